-- Revoke one token, if it is live and in the caller's scope.
-- KEYS[1] the user's hash
-- ARGV[1] rid, ARGV[2] user id (JSON) the token must carry ('' for any user),
-- ARGV[3] prune budget, ARGV[4..] app ids (JSON) the token must belong to (none: any app)
-- returns {app (JSON), user (JSON)} of the revoked token, or false if there was none in scope
local key = KEYS[1]
local record = redis.call('HGET', key, ARGV[1])
local now = math.floor(now_us() / 1000)
-- Rotated and idle tokens are no longer live: nothing to revoke (a rotated one's record stays
-- for reuse detection until it expires).
if not record or not usable(record, select(2, session_of(record)), now) then
  return false
end
local app, user = app_user_of(record)
if user == '' then
  user = redis.call('HGET', key, 'u')
end
if ARGV[2] ~= '' and user ~= ARGV[2] then
  return false
end
if #ARGV > 3 and not is_listed(app, 4) then
  return false
end
redis.call('HDEL', key, ARGV[1])
prune(key, now, tonumber(ARGV[3]))
drop_if_empty(key)
return {app, user}
