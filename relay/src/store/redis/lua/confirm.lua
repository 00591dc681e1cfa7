-- Confirmation of a claimed slot. KEYS slot, claim, confirm; ARGV confirmation JSON.
-- Returns 'stored', 'confirmed', 'not_claimed' or 'missing'.
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 'missing' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'not_claimed' end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ttl) then return 'stored' end
return 'confirmed'
