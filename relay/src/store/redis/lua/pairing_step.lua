-- The next step of a slot (the NAS's acceptance after the claim, its confirmation after the
-- acceptance). KEYS slot, the previous step, this step; ARGV this step's JSON.
-- Returns 'stored', 'done' (stored before), 'not_ready' (no previous step) or 'missing'.
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 'missing' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'not_ready' end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ttl) then return 'stored' end
return 'done'
