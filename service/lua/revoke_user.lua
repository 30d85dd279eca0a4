-- Revoke a user's tokens: optionally only some apps', only older ones, or all but one.
-- KEYS[1] user index
-- ARGV[1] token key prefix of this user (names the user's tokens, same slot),
-- ARGV[2] user id the tokens must carry ('' to skip: app sweeps know only the tag),
-- ARGV[3] rid to keep ('' for none),
-- ARGV[4] revoke only tokens created before this time, in microseconds ('' for all),
-- ARGV[5..] the app ids whose tokens to revoke (none: every app). A client limited to some
-- apps passes its apps; the app sweep passes the one app it sweeps.
-- returns {newest expiry ms of the user's tokens of those apps that stay (0: none), rid, app, ...}
local apps = nil
if #ARGV > 4 then
  apps = {}
  for i = 5, #ARGV do
    apps[ARGV[i]] = true
  end
end
local result = {0}
local before = tonumber(ARGV[4])
local kept = 0
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. rid
  local f = redis.call('HMGET', key, 'u', 'a', 'ct', 'ex')
  local in_apps = apps == nil or (f[2] and apps[f[2]] == true)
  if not f[1] then
    redis.call('ZREM', KEYS[1], rid)
  elseif rid ~= ARGV[3]
      and (ARGV[2] == '' or f[1] == ARGV[2])
      and in_apps
      and (before == nil or tonumber(f[3]) < before) then
    redis.call('UNLINK', key)
    redis.call('ZREM', KEYS[1], rid)
    table.insert(result, rid)
    table.insert(result, f[2])
  elseif in_apps and tonumber(f[4]) > kept then
    kept = tonumber(f[4])
  end
end
result[1] = string.format('%d', kept)
return result
