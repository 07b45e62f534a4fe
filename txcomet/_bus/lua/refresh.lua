-- KEYS: (info hash, expiry zset) per member ; ARGV: ttl ms, then
-- (client, info JSON) per member.  Returns the indexes (1-based) of members
-- that had expired and were added again.
-- (runs after prelude.lua)
local t = now()
local ttl = tonumber(ARGV[1])
local readded = {}
for i = 1, #KEYS, 2 do
  local n = (i + 1) / 2
  local client = ARGV[2 * n]
  local score = redis.call('ZSCORE', KEYS[i + 1], client)
  if (not score) or tonumber(score) <= t then readded[#readded + 1] = n end
  redis.call('ZADD', KEYS[i + 1], t + ttl, client)
  redis.call('HSET', KEYS[i], client, ARGV[2 * n + 1])
  redis.call('PEXPIRE', KEYS[i], 3 * ttl)
  redis.call('PEXPIRE', KEYS[i + 1], 3 * ttl)
end
return readded
