-- KEYS: epoch, offset, clock, stream, truncated, last
-- ARGV: epoch, kind, channel JSON, data JSON, store (1/0), maxlen, maxAge ms,
--       pub/sub channel, last's lifetime ms
-- (runs after prelude.lua)
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {0, epoch or ''} end
local t = now()
local maxAge = tonumber(ARGV[7])
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
local newest = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #newest == 0 or t - tonumber(newest[2]) >= 1000 then
  redis.call('ZADD', KEYS[3], t, before)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (t - maxAge))
redis.call('PEXPIRE', KEYS[3], maxAge + 1000)
local offset = redis.call('INCR', KEYS[2])
local envelope = '{"type":"' .. ARGV[2] .. '","channel":' .. ARGV[3] .. ',"id":"' ..
  epoch .. '-' .. offset .. '","data":' .. ARGV[4] .. '}'
local lastStored = redis.call('HGET', KEYS[6], 's')
redis.call('HSET', KEYS[6], 'a', offset)
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[6], 's', offset)
  local maxlen = tonumber(ARGV[6])
  local truncated = tonumber(redis.call('GET', KEYS[5]) or '0')
  local dropped = truncated
  if maxlen == 0 then
    dropped = offset
  else
    if redis.call('EXISTS', KEYS[4]) == 0 then
      -- A new history, or one that aged away: its last event says what
      -- was dropped; when that is forgotten too, nothing older than the
      -- history's age is known about this channel.
      if lastStored then
        dropped = math.max(dropped, tonumber(lastStored))
      else
        dropped = math.max(dropped, watermark(KEYS[3], t, maxAge, before))
      end
    end
    redis.call('XADD', KEYS[4], offset .. '-0', 'e', envelope, 't', t)
    local length = redis.call('XLEN', KEYS[4])
    if length > maxlen then
      local old = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', length - maxlen)
      dropped = math.max(dropped, offsetOf(old[#old][1]))
      redis.call('XTRIM', KEYS[4], 'MAXLEN', maxlen)
    end
    while true do
      local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
      if #head == 0 or tonumber(head[1][2][4]) >= t - maxAge then break end
      dropped = math.max(dropped, offsetOf(head[1][1]))
      redis.call('XDEL', KEYS[4], head[1][1])
    end
    redis.call('PEXPIRE', KEYS[4], maxAge)
  end
  if dropped > truncated then redis.call('SET', KEYS[5], dropped) end
  if dropped > 0 then redis.call('PEXPIRE', KEYS[5], maxAge) end
end
redis.call('PEXPIRE', KEYS[6], ARGV[9])
redis.call('PUBLISH', ARGV[8], envelope)
return {1, offset}
