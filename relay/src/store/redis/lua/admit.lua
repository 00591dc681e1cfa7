-- A signed request's admission: its nonce must be new, then its key's budget is charged.
-- KEYS nonce, the signer's request bucket (one hash tag: the key id); ARGV nonce ttl_ms,
-- interval_us, burst_us, now_us. Returns {0} for a replayed nonce (nothing charged), else
-- {1, allowed (1/0), retry_after_us}.
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {0} end
local allowed, retry = gcra(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), true)
return {1, allowed, retry}
