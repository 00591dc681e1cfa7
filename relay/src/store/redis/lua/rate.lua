-- One bucket. KEYS[1] bucket; ARGV interval_us, burst_us, now_us, consume ('1' or '0').
-- Returns {allowed (1/0), retry_after_us}.
local allowed, retry = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1')
return {allowed, retry}
