-- Record that a user holds a token of an app, until at least the given expiry.
-- KEYS[1] app bucket (zset user tag -> newest expiry ms)
-- ARGV[1] user tag, ARGV[2] expiry ms of the new token, ARGV[3] now ms
-- returns the bucket's size
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'NX')
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
return redis.call('ZCARD', KEYS[1])
