-- Record uses of tokens with an idle lifetime (batched: at most one call per user and flush).
-- KEYS[1] the user's hash
-- ARGV[1], ARGV[2], ... pairs: rid (8 bytes), time of the use (epoch ms)
-- returns how many records were updated
-- A token that was no longer live at the time of its use (idle already, rotated, revoked,
-- expired) is left as it is: a late write never brings an idle token back.
local key = KEYS[1]
local updated = 0
for i = 1, #ARGV, 2 do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  local used = tonumber(ARGV[i + 1])
  if record then
    local body, fields = session_of(record)
    if usable(record, fields, used) and (tonumber(fields[5]) or 0) < used then
      fields[5] = string.format('%d', used)
      redis.call('HSET', key, ARGV[i], with_session(body, fields))
      updated = updated + 1
    end
  end
end
return updated
