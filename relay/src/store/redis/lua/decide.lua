-- First verdict wins. KEYS state; ARGV verdict JSON.
-- Returns 'accepted', 'decided', 'cancelled' or 'missing'.
local state = redis.call('GET', KEYS[1])
if not state then return 'missing' end
if state == 'pending' then
  redis.call('SET', KEYS[1], 'd' .. ARGV[1], 'KEEPTTL')
  return 'accepted'
end
if state == 'cancelled' then return 'cancelled' end
return 'decided'
