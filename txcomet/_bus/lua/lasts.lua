-- KEYS: last hashes ; returns the offset of each channel's newest event
-- (0 when unknown)
local out = {}
for i = 1, #KEYS do
  out[i] = tonumber(redis.call('HGET', KEYS[i], 'a') or '0')
end
return out
