-- Shared by the user-hash scripts (prepended to each when it is loaded; defines no globals).
-- A user hash (keys.py, layout v2) maps rid (8 bytes) -> record, plus 'u' (owner, JSON) and
-- 'c' (the prune cursor). A record (records.py) starts with its expiry (ms, 6 bytes) and creation time
-- (us, 7 bytes), big-endian, then a 16-byte digest and one flags character; then the pieces,
-- separated by \31: app (JSON), user (JSON, '' for the owner), ...
local PIECES_AT = 31

local function is_token(field)
  return #field == 8  -- a rid; 'u' and 'c' are one byte
end

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
