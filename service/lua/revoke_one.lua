-- Revoke one token and drop it from its user's index, if it is in the caller's scope.
-- KEYS[1] token hash, KEYS[2] user index
-- ARGV[1] rid, ARGV[2] user id the token must carry ('' for any user),
-- ARGV[3..] app ids the token must belong to (none: any app)
-- returns {app id, user id} of the revoked token, or false if there was none in scope
local f = redis.call('HMGET', KEYS[1], 'a', 'u')
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
if ARGV[2] ~= '' and f[2] ~= ARGV[2] then
  return false
end
if #ARGV > 2 then
  local allowed = false
  for i = 3, #ARGV do
    if ARGV[i] == f[1] then allowed = true end
  end
  if not allowed then
    return false
  end
end
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return f
