-- KEYS: epoch, offset, clock, stream, truncated, last, gap
-- ARGV: since offset (-1: everything), maxAge ms, this node's channel, a
--       sync token to publish on it ('' for none)
-- (runs after prelude.lua)
local epoch = redis.call('GET', KEYS[1]) or ''
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = now()
local maxAge = tonumber(ARGV[2])
local since = tonumber(ARGV[1])
local dropped = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'),
                         tonumber(redis.call('GET', KEYS[7]) or '0'))
local start = '-'
if since >= 0 then start = (since + 1) .. '-0' end
local kept = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], start, '+')) do
  if tonumber(entry[2][4]) < t - maxAge then
    dropped = math.max(dropped, offsetOf(entry[1]))
  else
    kept[#kept + 1] = entry[2][2]
  end
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  local lastStored = redis.call('HGET', KEYS[6], 's')
  if lastStored then
    dropped = math.max(dropped, tonumber(lastStored))
  else
    dropped = math.max(dropped, watermark(KEYS[3], t, maxAge, counter))
  end
end
if ARGV[4] ~= '' then
  -- Behind every event published before this read, on this node's pub/sub
  -- connection: when it arrives, so have they.
  redis.call('PUBLISH', ARGV[3], '{"t":"sync","token":' .. ARGV[4] .. '}')
end
return {epoch, counter, dropped, kept}
