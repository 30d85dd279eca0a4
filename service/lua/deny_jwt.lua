-- Deny a JWT until it expires.
-- KEYS[1] the JWT's deny key (string)
-- ARGV[1] the JWT's expiry, epoch ms
-- returns 1
redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
return 1
