-- Take a webhook's delivery lease if it is free, or extend it if this process holds it.
-- KEYS[1] the webhook's lease (string: the holder's random token)
-- ARGV[1] this process's token, ARGV[2] the lease's time to live, ms
-- returns 1 if this process holds the lease for ARGV[2] ms from now, 0 if another one does
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
