-- Give a webhook's delivery lease up (a process stopping), if this process still holds it.
-- KEYS[1] the webhook's lease (string: the holder's random token)
-- ARGV[1] this process's token
-- returns 1 if it was released, 0 if another process holds it (or nobody)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
