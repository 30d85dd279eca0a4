-- Keep a webhook's dead letter (or replace it, after a failed redelivery).
-- KEYS[1] the webhook's dead letters (hash: stream id -> JSON)
-- KEYS[2] their order (zset, every score 0: zero-padded stream ids), in KEYS[1]'s slot
-- ARGV[1] the event's stream id, ARGV[2] its order member, ARGV[3] the dead letter (JSON),
-- ARGV[4] how long both keys are kept after this failure, ms
-- returns 1
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
