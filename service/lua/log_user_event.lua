-- Keep a user's recent revocation events: newest first, capped, in the user's slot.
-- KEYS[1] the user's event list
-- ARGV[1] the event (JSON), ARGV[2] most events kept, ARGV[3] ms to keep the list without news
-- returns the list's length
-- One script so that the list never exists without its cap and its expiry.
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('LLEN', KEYS[1])
