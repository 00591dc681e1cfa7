-- First verdict wins. KEYS state, record; ARGV verdict JSON.
-- Returns {'accepted', <device id of every target>...} (whose inboxes to clear), or
-- {'decided'}, {'cancelled'}, {'missing'}.
local state = redis.call('GET', KEYS[1])
if not state then return {'missing'} end
if state == 'pending' then
  redis.call('SET', KEYS[1], 'd' .. ARGV[1], 'KEEPTTL')
  return with_targets({'accepted'}, KEYS[2])
end
if state == 'cancelled' then return {'cancelled'} end
return {'decided'}
