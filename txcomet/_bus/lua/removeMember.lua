-- KEYS: info hash, expiry zset ; ARGV: client
-- (runs after prelude.lua)
local t = now()
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
if score and tonumber(score) > t then return 1 else return 0 end
