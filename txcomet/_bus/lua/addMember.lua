-- KEYS: info hash, expiry zset ; ARGV: client, info JSON, ttl ms
-- (runs after prelude.lua)
local t = now()
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
local new = (not score) or tonumber(score) <= t
redis.call('ZADD', KEYS[2], t + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
-- The keys outlive their members, so a member whose node died is still
-- there to be reaped (and its leave announced) for a while.
redis.call('PEXPIRE', KEYS[1], 3 * tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[3]))
if new then return 1 else return 0 end
