-- Post a mailbox notice, replacing the older notice of the same kind for the same device.
-- KEYS stream, latest (hash: coalescing key -> stream id of its current entry);
-- ARGV coalescing key, entry JSON, min id (older entries expired), ttl_ms, cap.
-- Returns the new entry's id.
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous then redis.call('XDEL', KEYS[1], previous) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], '*', 'n', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return id
