-- Rotate a token: issue its successor in the same session and retire it, or detect reuse.
-- KEYS[1] the user's hash
-- ARGV[1] rid presented (8 bytes), ARGV[2] digest of the value presented (16 bytes),
-- ARGV[3] rid of the successor (8 bytes), ARGV[4] digest of the successor's value,
-- ARGV[5] grace ms (0: none), ARGV[6] prune budget,
-- ARGV[7] user id (JSON) the token must carry ('' for any: the caller's scope),
-- ARGV[8..] app ids (JSON) it may belong to (none: any)
-- returns one of
--   {'ok', successor record, owner (JSON), rid of a successor it replaces ('' if none),
--    the presented token's creation (us)}
--   {'invalid'}: no live token of that value (unknown, expired, revoked, idle)
--   {'clash'}: ARGV[3] is taken; draw another
--   {'reused', user (JSON), session rid (hex), rid, app (JSON), ...}: the token was rotated
--     already (outside the grace): every token of its session is deleted, rotated ones too
-- The presented token's record is kept, flagged rotated (session field 6, successor in 7),
-- until its own expiry, so that presenting it again is recognised as reuse.
local key = KEYS[1]
local record = redis.call('HGET', key, ARGV[1])
local created = now_us()
local now = math.floor(created / 1000)
-- A plain comparison, not a constant-time one: the digest of a 256-bit secret leaks nothing
-- useful through its timing, and Redis's own reply time dwarfs it.
if not record or expires_of(record) <= now or string.sub(record, 14, 29) ~= ARGV[2] then
  return {'invalid'}
end
-- Outside the caller's scope it is no token of theirs: not even its reuse is theirs to detect.
-- (App watermarks live in other slots: the caller checks them after this script.)
local app, holder = app_user_of(record)
if holder == '' then
  holder = redis.call('HGET', key, 'u')
end
if (ARGV[7] ~= '' and holder ~= ARGV[7]) or (#ARGV >= 8 and not is_listed(app, 8)) then
  return {'invalid'}
end
if redis.call('HEXISTS', key, ARGV[3]) == 1 then
  return {'clash'}
end
local body, fields = session_of(record)
local sid = session_rid(ARGV[1], fields)
local replaced = ''
if fields[6] ~= '' then
  -- Rotated already. Only the immediate predecessor of the live token, within the grace,
  -- gets another successor (a client's concurrent refreshes); anything older is reuse.
  local grace = tonumber(ARGV[5])
  local successor = fields[7] ~= '' and redis.call('HGET', key, raw_rid(fields[7]))
  local in_grace = grace > 0 and now - tonumber(fields[6]) <= grace
  if in_grace and successor and usable(successor, select(2, session_of(successor)), now) then
    replaced = raw_rid(fields[7])
    redis.call('HDEL', key, replaced)
  else
    local revoked = delete_session(key, sid, '', now, #ARGV + 1)
    table.insert(revoked, 2, sid)
    table.insert(revoked, 1, 'reused')
    return revoked
  end
elseif not usable(record, fields, now) then
  return {'invalid'}
end
local ttl = expires_of(record) - math.floor(created_of(record) / 1000)
local expires = now + ttl
if fields[4] ~= '' and tonumber(fields[4]) < expires then
  expires = tonumber(fields[4])
end
local start = fields[3]
if start == '' then
  start = string.format('%d', math.floor(created_of(record) / 1000))
end
local next_fields = {sid, fields[2], start, fields[4], '', '', ''}
local next_record = with_session(bytes_of(expires, 6) .. bytes_of(created, 7) .. ARGV[4]
  .. string.sub(body, 30), next_fields)
if replaced == '' then
  fields[6] = string.format('%d', now)
end
fields[7] = hex_of(ARGV[3])
redis.call('HSET', key, ARGV[1], with_session(body, fields))
prune(key, now, tonumber(ARGV[6]))
redis.call('HSET', key, ARGV[3], next_record)
redis.call('PEXPIREAT', key, expires, 'GT')
return {'ok', next_record, redis.call('HGET', key, 'u'), replaced,
  string.format('%d', created_of(record))}
