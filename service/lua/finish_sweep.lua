-- Mark an app's sweep done, unless a newer revocation of the app queued another meanwhile.
-- KEYS[1] pending sweeps (hash app -> watermark us)
-- ARGV[1] app id, ARGV[2] the watermark the finished sweep worked to
-- returns 1 if the entry was removed, 0 if a newer one stays
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
