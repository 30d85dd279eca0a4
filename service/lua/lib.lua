-- Shared by the user-hash scripts (prepended to each when it is loaded; defines no globals).
-- A user hash (keys.py, layout v2) maps rid (8 bytes) -> record, plus 'u' (owner, JSON),
-- 'c' (the prune cursor) and 's' (when an app sweep last dropped the user from an app index, ms). A record (records.py) starts with its expiry (ms, 6 bytes) and creation time
-- (us, 7 bytes), big-endian, then a 16-byte digest and one flags character; then the pieces,
-- separated by \31: app (JSON), user (JSON, '' for the owner), ...
local PIECES_AT = 31

local function is_token(field)
  return #field == 8  -- a rid; 'u', 'c' and 's' are one byte
end

-- How long after an app sweep dropped a user from an app's index an issue re-indexes: longer
-- than any issue takes between indexing its user and storing its token (Redis timeouts).
local SWEPT_MS = 10000

-- The unsigned big-endian integer of `width` bytes at `from` (exact below 2^53).
local function number_at(s, from, width)
  local n = 0
  for i = from, from + width - 1 do
    n = n * 256 + string.byte(s, i)
  end
  return n
end

-- `n` as `width` big-endian bytes
local function bytes_of(n, width)
  local out = {}
  for i = width, 1, -1 do
    out[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(out)
end

local function expires_of(record)
  return number_at(record, 1, 6)
end

local function created_of(record)
  return number_at(record, 7, 7)
end

-- app (JSON) and user (JSON, '' for the hash's owner) of a record
local function app_user_of(record)
  local app_end = string.find(record, '\31', PIECES_AT, true)
  local user_end = string.find(record, '\31', app_end + 1, true)
  return string.sub(record, PIECES_AT, app_end - 1), string.sub(record, app_end + 1, user_end - 1)
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Delete the expired tokens among at most about `budget` fields, resuming where the last
-- call stopped: a big hash is pruned over several writes, never in one long script.
local function prune(key, now, budget)
  local cursor = redis.call('HGET', key, 'c') or '0'
  local reply = redis.call('HSCAN', key, cursor, 'COUNT', budget)
  local flat = reply[2]
  for i = 1, #flat, 2 do
    if is_token(flat[i]) and expires_of(flat[i + 1]) <= now then
      redis.call('HDEL', key, flat[i])
    end
  end
  if reply[1] == '0' then
    redis.call('HDEL', key, 'c')
  else
    redis.call('HSET', key, 'c', reply[1])
  end
end

-- A hash left with no token goes at once (its owner and cursor mean nothing alone).
local function drop_if_empty(key)
  local others = redis.call('HEXISTS', key, 'u') + redis.call('HEXISTS', key, 'c')
    + redis.call('HEXISTS', key, 's')
  if redis.call('HLEN', key) <= others then
    redis.call('UNLINK', key)
  end
end

local function is_listed(value, from)
  for i = from, #ARGV do
    if ARGV[i] == value then
      return true
    end
  end
  return false
end

-- The session piece (records.py, Session): the eighth piece, absent for a token that is a
-- session of its own with no idle lifetime. Fields, comma-separated, empty = default:
-- 1 session rid (hex; '' = the token's own), 2 idle ttl s, 3 session start ms,
-- 4 session end ms, 5 last use ms, 6 rotated at ms, 7 successor rid (hex).
local SESSION_FIELDS = 7

-- the record up to its session piece (exclusive), and the piece's fields
local function session_of(record)
  local at = PIECES_AT
  for _ = 1, 6 do
    at = string.find(record, '\31', at, true) + 1
  end
  local sep = string.find(record, '\31', at, true)
  local fields = {}
  local piece = sep and string.sub(record, sep + 1) or ''
  local from = 1
  for i = 1, SESSION_FIELDS do
    local comma = string.find(piece, ',', from, true)
    if comma then
      fields[i] = string.sub(piece, from, comma - 1)
      from = comma + 1
    else
      fields[i] = string.sub(piece, from)
      from = #piece + 2
    end
  end
  return string.sub(record, 1, (sep or #record + 1) - 1), fields
end

-- `body` (a record without session piece) with the session `fields` (trailing empty ones,
-- or the whole piece if all are empty, left out)
local function with_session(body, fields)
  local piece = string.gsub(table.concat(fields, ',', 1, SESSION_FIELDS), ',+$', '')
  if piece == '' then
    return body
  end
  return body .. '\31' .. piece
end

local function hex_of(raw)
  return (string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- the session rid (hex) of a token stored under `rid` (8 raw bytes)
local function session_rid(rid, fields)
  if fields[1] ~= '' then
    return fields[1]
  end
  return hex_of(rid)
end

local function raw_rid(hex)
  return (string.gsub(hex, '%x%x', function(h) return string.char(tonumber(h, 16)) end))
end

-- live at `now` (ms): not rotated, not idle for longer than its idle lifetime, not expired
local function usable(record, fields, now)
  if fields[6] ~= '' or expires_of(record) <= now then
    return false
  end
  local idle = tonumber(fields[2]) or 0
  if idle > 0 then
    local last = tonumber(fields[5]) or math.floor(created_of(record) / 1000)
    return last + idle * 1000 > now
  end
  return true
end

-- Delete every token of session `sid` (hex) held by `user` (JSON; '' for any) in the apps
-- listed in ARGV from `apps_from` (none: any), rotated ones included.
-- returns {user (JSON) of the session, rid, app (JSON), ...} of the live ones deleted, or
-- false if the session has no token there
local function delete_session(key, sid, user, now, apps_from)
  local owner = redis.call('HGET', key, 'u')
  local result = nil
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local rid, record = flat[i], flat[i + 1]
    if is_token(rid) then
      local _, fields = session_of(record)
      local app, holder = app_user_of(record)
      if holder == '' then
        holder = owner
      end
      if session_rid(rid, fields) == sid and (user == '' or holder == user)
          and (#ARGV < apps_from or is_listed(app, apps_from)) then
        redis.call('HDEL', key, rid)
        result = result or {holder}
        if usable(record, fields, now) then
          table.insert(result, rid)
          table.insert(result, app)
        end
      end
    end
  end
  if result then
    drop_if_empty(key)
  end
  return result or false
end
