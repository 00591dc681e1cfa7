-- Add an inbox entry and keep the hash alive for its longest entry.
-- KEYS inbox; ARGV cid, value JSON, ttl_ms. Returns 1.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
