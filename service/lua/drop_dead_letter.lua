-- Forget a webhook's dead letter (it was redelivered).
-- KEYS[1] the webhook's dead letters (hash), KEYS[2] their order (zset), in one slot
-- ARGV[1] the event's stream id, ARGV[2] its order member
-- returns 1 if the dead letter was there, else 0
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('HDEL', KEYS[1], ARGV[1])
