-- Store one token in its user's hash, atomically on the user's slot.
-- KEYS[1] the user's hash
-- ARGV[1] rid, ARGV[2] lifetime ms, ARGV[3] most live tokens per user (0: no limit),
-- ARGV[4] user id (JSON), ARGV[5] app id (JSON), ARGV[6] digest (16 bytes),
-- ARGV[7] the record's other pieces (type .. metadata), ARGV[8] prune budget (fields),
-- ARGV[9] idle lifetime s ('' or 0: none), ARGV[10] session lifetime ms ('': none; a new
-- session only), ARGV[11] rid (hex) of a live session of this user and app to join ('': a
-- new session, whose id is this token's)
-- returns {record, owner (JSON), reindex, evicted rid, evicted app (JSON), ...}, or false on an id
-- clash (a plain reply, not an error: the caller draws another id), or 0 if the session to
-- join is not live
-- Creation is kept in microseconds so that "oldest" and watermark comparisons have no ties.
local key = KEYS[1]
if redis.call('HEXISTS', key, ARGV[1]) == 1 then
  return false
end
local created = now_us()
local now = math.floor(created / 1000)
local expires = now + tonumber(ARGV[2])
local owner = redis.call('HGET', key, 'u')
if not owner then
  owner = ARGV[4]
  redis.call('HSET', key, 'u', owner)
end
local user = ARGV[4]
if user == owner then
  user = ''
end
local idle = ARGV[9] or ''
if idle == '0' then
  idle = ''
end
local session = {'', idle, '', '', '', '', ''}
local join = ARGV[11] or ''
if join ~= '' then
  local found = nil
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    if is_token(flat[i]) then
      local app, holder = app_user_of(flat[i + 1])
      local _, fields = session_of(flat[i + 1])
      if app == ARGV[5] and holder == user and session_rid(flat[i], fields) == join
          and usable(flat[i + 1], fields, now) then
        found = fields
        if found[3] == '' then
          found[3] = string.format('%d', math.floor(created_of(flat[i + 1]) / 1000))
        end
        break
      end
    end
  end
  if not found then
    return 0
  end
  session = {join, idle, found[3], found[4], '', '', ''}
elseif (ARGV[10] or '') ~= '' then
  session[4] = string.format('%d', now + tonumber(ARGV[10]))
end
if session[4] ~= '' and tonumber(session[4]) < expires then
  expires = tonumber(session[4])
end
local record = with_session(bytes_of(expires, 6) .. bytes_of(created, 7) .. ARGV[6] .. '0'
  .. ARGV[5] .. '\31' .. user .. '\31' .. ARGV[7], session)
prune(key, now, tonumber(ARGV[8]))
redis.call('HSET', key, ARGV[1], record)
-- NX gives a new hash its expiry, GT pushes it out to the latest token's.
redis.call('PEXPIREAT', key, expires, 'NX')
redis.call('PEXPIREAT', key, expires, 'GT')
-- An app sweep may have dropped this user from an app's index after the caller indexed it
-- and before this token existed (other slots: not atomic): '1' asks the caller to index again.
local swept = tonumber(redis.call('HGET', key, 's') or '0')
local reindex = ''
if swept > 0 and now - swept < SWEPT_MS then
  reindex = '1'
elseif swept > 0 then
  redis.call('HDEL', key, 's')
end
local result = {record, owner, reindex}
local limit = tonumber(ARGV[3])
if limit == 0 or redis.call('HLEN', key) - 1 <= limit then
  return result  -- at most the limit even if every field but the owner were a token
end
local live = {}
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  if is_token(flat[i]) then
    if expires_of(flat[i + 1]) <= now then
      redis.call('HDEL', key, flat[i])
    elseif flat[i] ~= ARGV[1] then
      table.insert(live, {created_of(flat[i + 1]), flat[i], flat[i + 1]})
    end
  end
end
table.sort(live, function(x, y)
  if x[1] == y[1] then return x[2] < y[2] end
  return x[1] < y[1]
end)
for i = 1, #live + 1 - limit do
  local rid, old = live[i][2], live[i][3]
  redis.call('HDEL', key, rid)
  local app, _ = app_user_of(old)
  table.insert(result, rid)
  table.insert(result, app)
end
return result
