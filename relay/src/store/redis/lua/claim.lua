-- First claim of a pairing slot. KEYS slot, claim; ARGV claim JSON.
-- Returns 'stored', 'claimed' or 'missing'.
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 'missing' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ttl) then return 'stored' end
return 'claimed'
