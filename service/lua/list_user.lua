-- A user's live tokens, pruning expired ones from the index on the way.
-- KEYS[1] user index
-- ARGV[1] token key prefix of this user (names the user's tokens, same slot), ARGV[2] now ms
-- returns {rid, {field, value, ...}, ...}, soonest expiry first
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local result = {}
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local fields = redis.call('HGETALL', ARGV[1] .. rid)
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], rid)
  else
    table.insert(result, rid)
    table.insert(result, fields)
  end
end
return result
