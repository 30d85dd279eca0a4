-- Revoke a user's tokens: optionally only some apps', only older ones, or all but one.
-- KEYS[1] the user's hash
-- ARGV[1] user id (JSON) the tokens must carry ('' to skip: app sweeps know only the tag),
-- ARGV[2] rid to keep (8 bytes), or rid (16 hex digits) of a session whose tokens to keep
-- ('' for none),
-- ARGV[3] revoke only tokens created before this time, in microseconds ('' for all),
-- ARGV[4..] app ids (JSON) whose tokens to revoke (none: every app). A client limited to some
-- apps passes its apps; the app sweep passes the one app it sweeps.
-- returns {latest expiry ms of the tokens of those apps that stay (0: none), rid, app, ...}
-- (rid, app: the live tokens revoked; rotated and idle ones are deleted without a mention)
-- Every field is read anyway, so expired tokens are pruned on the way and the hash's expiry
-- is set to that of its latest token left.
local key = KEYS[1]
local owner = redis.call('HGET', key, 'u')
local before = tonumber(ARGV[3])
local now = math.floor(now_us() / 1000)
local keep_session = #ARGV[2] == 16 and ARGV[2] or nil
local function kept_session(rid, record)
  if not keep_session then
    return false
  end
  local _, fields = session_of(record)
  return session_rid(rid, fields) == keep_session
end
local result = {0}
local kept, latest = 0, 0
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  local rid, record = flat[i], flat[i + 1]
  if is_token(rid) then
    local expires = expires_of(record)
    local app, user = app_user_of(record)
    if user == '' then
      user = owner
    end
    local in_apps = #ARGV < 4 or is_listed(app, 4)
    if expires <= now then
      redis.call('HDEL', key, rid)
    elseif rid ~= ARGV[2]
        and not kept_session(rid, record)
        and (ARGV[1] == '' or user == ARGV[1])
        and in_apps
        and (before == nil or created_of(record) < before) then
      redis.call('HDEL', key, rid)
      if usable(record, select(2, session_of(record)), now) then  -- not rotated, not idle
        table.insert(result, rid)
        table.insert(result, app)
      end
    else
      if in_apps and expires > kept then
        kept = expires
      end
      if expires > latest then
        latest = expires
      end
    end
  end
end
if latest > 0 then
  redis.call('HDEL', key, 'c')
  redis.call('PEXPIREAT', key, latest)
else
  redis.call('UNLINK', key)
end
if before ~= nil and kept == 0 then
  -- An app sweep (the only caller with a time) drops this user from the app's index: an issue
  -- that indexed the user before that and stores its token after it must index again.
  redis.call('HSET', key, 's', string.format('%d', now))
  if latest == 0 then
    redis.call('PEXPIRE', key, SWEPT_MS)
  end
end
result[1] = string.format('%d', kept)
return result
