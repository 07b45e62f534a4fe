-- KEYS: epoch, offset, gap, truncated keys...
-- ARGV: epoch, maxAge ms, all (1/0), notice channel, node id, channel names JSON
-- Marks positions before now as not covered on the given channels (or on
-- all), and tells every node.
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {0, epoch or ''} end
local g = redis.call('INCR', KEYS[2])
local maxAge = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('SET', KEYS[3], g, 'PX', maxAge)
else
  for i = 4, #KEYS do
    local old = tonumber(redis.call('GET', KEYS[i]) or '0')
    if g > old then redis.call('SET', KEYS[i], g, 'PX', maxAge) end
  end
end
redis.call('PUBLISH', ARGV[4], '{"t":"gap","node":"' .. ARGV[5] .. '","epoch":"' .. epoch ..
  '","offset":' .. g .. ',"all":' .. (ARGV[3] == '1' and 'true' or 'false') ..
  ',"channels":' .. ARGV[6] .. '}')
return {1, g}
