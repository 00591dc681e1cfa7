-- One target of a new challenge: charge the device's challenge bucket and, when allowed, read
-- its mute of the sending NAS. KEYS bucket, mute (one hash tag: the device id);
-- ARGV interval_us, burst_us, now_us. Returns {allowed (1/0), retry_after_us, mute end or -1}.
local allowed, retry = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), true)
if allowed == 0 then return {0, retry, -1} end
return {1, 0, tonumber(redis.call('GET', KEYS[2]) or '-1')}
