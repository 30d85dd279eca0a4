-- Raise app watermarks in one copy of the watermarks hash (they only grow: a lower value
-- never replaces a higher one), dropping those older than any token can be.
-- KEYS[1] a copy of the app watermarks (hash app -> us)
-- ARGV[1] longest token lifetime ms, ARGV[2..] app id, watermark us, app id, watermark us...
-- returns the number of watermarks raised
local t = redis.call('TIME')
local horizon = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[1]) * 1000
local raised = 0
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or tonumber(old) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    raised = raised + 1
  end
end
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < horizon then
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
if raised > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return raised
