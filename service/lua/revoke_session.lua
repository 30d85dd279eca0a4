-- Revoke every token of one session ("log out this device"), rotated ones included.
-- KEYS[1] the user's hash
-- ARGV[1] session rid (16 hex digits), ARGV[2] user id (JSON) the tokens must carry ('' for
-- any user), ARGV[3..] app ids (JSON) the tokens must belong to (none: any app)
-- returns {user (JSON), rid, app (JSON), ...} of the live tokens revoked, or false if the
-- session has no token in scope
local now = math.floor(now_us() / 1000)
return delete_session(KEYS[1], ARGV[1], ARGV[2], now, 3)
