-- KEYS: info hash, expiry zset
-- Returns {members (client, info)..., ghosts reaped (client, info)...}
-- (runs after prelude.lua)
local t = now()
local ghosts = {}
for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', t)) do
  ghosts[#ghosts + 1] = client
  ghosts[#ghosts + 1] = redis.call('HGET', KEYS[1], client) or '{}'
  redis.call('ZREM', KEYS[2], client)
  redis.call('HDEL', KEYS[1], client)
end
local members = {}
for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. t, '+inf')) do
  members[#members + 1] = client
  members[#members + 1] = redis.call('HGET', KEYS[1], client) or '{}'
end
return {members, ghosts}
