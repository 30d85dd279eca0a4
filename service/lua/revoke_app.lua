-- Set an app's revoked_before watermark and queue the sweep that reclaims its tokens.
-- KEYS[1] app watermarks (hash app -> us), KEYS[2] pending sweeps (hash app -> us); same slot
-- ARGV[1] app id, ARGV[2] longest token lifetime ms (older watermarks can no longer matter)
-- returns the watermark in microseconds: tokens of the app created before it are revoked
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local watermark = string.format('%d', now_us + 1)
local horizon = now_us - tonumber(ARGV[2]) * 1000
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < horizon then
    redis.call('HDEL', KEYS[1], flat[i])
    redis.call('HDEL', KEYS[2], flat[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], watermark)
redis.call('HSET', KEYS[2], ARGV[1], watermark)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return watermark
