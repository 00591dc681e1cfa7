-- Cancel a pending challenge. KEYS state.
-- Returns 'cancelled', 'already_cancelled', 'decided' or 'missing'.
local state = redis.call('GET', KEYS[1])
if not state then return 'missing' end
if state == 'pending' then
  redis.call('SET', KEYS[1], 'cancelled', 'KEEPTTL')
  return 'cancelled'
end
if state == 'cancelled' then return 'already_cancelled' end
return 'decided'
