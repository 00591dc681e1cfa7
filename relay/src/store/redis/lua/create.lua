-- Create a challenge unless its cid exists. KEYS challenge, state, deliveries;
-- ARGV challenge JSON, deliveries JSON, ttl_ms. Returns 1 (created) or 0 (exists).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], 'pending', 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
