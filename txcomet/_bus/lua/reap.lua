-- KEYS: (info hash, expiry zset) per channel
-- Returns, per channel, the members reaped (client, info)...
-- (runs after prelude.lua)
local t = now()
local out = {}
for i = 1, #KEYS, 2 do
  local ghosts = {}
  for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i + 1], '-inf', t)) do
    ghosts[#ghosts + 1] = client
    ghosts[#ghosts + 1] = redis.call('HGET', KEYS[i], client) or '{}'
    redis.call('ZREM', KEYS[i + 1], client)
    redis.call('HDEL', KEYS[i], client)
  end
  out[#out + 1] = ghosts
end
return out
