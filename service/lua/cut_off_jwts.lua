-- Cut off a user's JWTs issued until now (of every app, "*", or of the apps named), keeping
-- each cut-off as long as the longest JWT lifetime and dropping those older than that.
-- KEYS[1] the user's JWT cut-offs (hash "*" or app id -> us)
-- ARGV[1] longest JWT lifetime ms, ARGV[2..] "*" or app ids
-- returns the cut-off in microseconds: the user's JWTs issued before it are revoked
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cutoff = string.format('%d', now_us + 1)
local horizon = now_us - tonumber(ARGV[1]) * 1000
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < horizon then
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
for i = 2, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], cutoff)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return cutoff
