-- Cancel a pending challenge. KEYS state, record.
-- Returns {'cancelled', <device id of every target>...} (whose inboxes to clear), or
-- {'already_cancelled'}, {'decided'}, {'missing'}.
local state = redis.call('GET', KEYS[1])
if not state then return {'missing'} end
if state == 'pending' then
  redis.call('SET', KEYS[1], 'cancelled', 'KEEPTTL')
  return with_targets({'cancelled'}, KEYS[2])
end
if state == 'cancelled' then return {'already_cancelled'} end
return {'decided'}
