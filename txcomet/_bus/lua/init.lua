-- KEYS: epoch, offset ; ARGV: a new epoch to use if there is none
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}
