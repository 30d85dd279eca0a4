-- Store one token and index it under its user, atomically on the user's slot.
-- KEYS[1] token hash, KEYS[2] user index (zset rid -> expires ms)
-- ARGV[1] rid, ARGV[2] lifetime ms, ARGV[3] most live tokens per user (0: no limit),
-- ARGV[4] token key prefix of this user (names the user's other tokens, same slot),
-- ARGV[5..] field, value pairs of the record
-- returns {created us, expires ms, evicted rid, evicted app, ...}, or false on an id clash
-- (a plain reply, not an error: the caller draws another id)
-- Creation is kept in microseconds so that "oldest" and watermark comparisons have no ties.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local expires = now + tonumber(ARGV[2])
local now_s, expires_s = string.format('%d', now), string.format('%d', expires)
local created_s = string.format('%d', now_us)
redis.call('HSET', KEYS[1], 'ct', created_s, 'ex', expires_s, unpack(ARGV, 5))
redis.call('PEXPIREAT', KEYS[1], expires_s)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_s)
redis.call('ZADD', KEYS[2], expires_s, ARGV[1])
-- NX gives a new index its expiry, GT pushes it out to the newest member's.
redis.call('PEXPIREAT', KEYS[2], expires_s, 'NX')
redis.call('PEXPIREAT', KEYS[2], expires_s, 'GT')
local result = {created_s, expires_s}
local limit = tonumber(ARGV[3])
local count = redis.call('ZCARD', KEYS[2])
if limit == 0 or count <= limit then
  return result
end
local others = {}
for _, rid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if rid ~= ARGV[1] then
    local created = tonumber(redis.call('HGET', ARGV[4] .. rid, 'ct')) or 0
    table.insert(others, {created, rid})
  end
end
table.sort(others, function(x, y)
  if x[1] == y[1] then return x[2] < y[2] end
  return x[1] < y[1]
end)
for i = 1, count - limit do
  local rid = others[i][2]
  local app = redis.call('HGET', ARGV[4] .. rid, 'a')
  redis.call('UNLINK', ARGV[4] .. rid)
  redis.call('ZREM', KEYS[2], rid)
  if app then
    table.insert(result, rid)
    table.insert(result, app)
  end
end
return result
