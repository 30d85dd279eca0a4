-- Revoke one token and drop it from its user's index.
-- KEYS[1] token hash, KEYS[2] user index
-- ARGV[1] rid
-- returns the token's app id, or false if there was no such token
local app = redis.call('HGET', KEYS[1], 'a')
redis.call('ZREM', KEYS[2], ARGV[1])
if not app then
  return false
end
redis.call('UNLINK', KEYS[1])
return app
