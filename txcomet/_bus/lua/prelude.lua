-- Helpers the scripts that read history and presence start with.
local function watermark(clockKey, now, maxAge, counter)
  local first = redis.call('ZRANGEBYSCORE', clockKey, now - maxAge, '+inf', 'LIMIT', 0, 1)
  if #first > 0 then return tonumber(first[1]) end
  return counter
end
local function offsetOf(id)
  return tonumber(string.match(id, '^(%d+)'))
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
