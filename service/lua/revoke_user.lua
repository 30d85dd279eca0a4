-- Revoke a user's tokens, optionally only one app's, only older ones, or all but one.
-- KEYS[1] user index
-- ARGV[1] token key prefix of this user (names the user's tokens, same slot),
-- ARGV[2] user id the tokens must carry ('' to skip: app sweeps know only the tag),
-- ARGV[3] app id ('' for every app), ARGV[4] rid to keep ('' for none),
-- ARGV[5] revoke only tokens created before this time, in microseconds ('' for all)
-- returns {newest expiry ms of the user's tokens of ARGV[3] that stay (0: none), rid, app, ...}
local result = {0}
local before = tonumber(ARGV[5])
local kept = 0
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. rid
  local f = redis.call('HMGET', key, 'u', 'a', 'ct', 'ex')
  local in_app = ARGV[3] == '' or f[2] == ARGV[3]
  if not f[1] then
    redis.call('ZREM', KEYS[1], rid)
  elseif rid ~= ARGV[4]
      and (ARGV[2] == '' or f[1] == ARGV[2])
      and in_app
      and (before == nil or tonumber(f[3]) < before) then
    redis.call('UNLINK', key)
    redis.call('ZREM', KEYS[1], rid)
    table.insert(result, rid)
    table.insert(result, f[2])
  elseif in_app and tonumber(f[4]) > kept then
    kept = tonumber(f[4])
  end
end
result[1] = string.format('%d', kept)
return result
