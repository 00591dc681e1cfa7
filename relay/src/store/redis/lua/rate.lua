-- GCRA step, in unix microseconds. KEYS[1] bucket; ARGV interval_us, burst_us, now_us,
-- consume ('1' or '0'). Returns {allowed (1/0), retry_after_us}. Lua numbers are doubles:
-- exact for integers below 2^53 µs (year 2255).
local now = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[3])
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local ahead = new_tat - now
if ahead > tonumber(ARGV[2]) then return {0, ahead - tonumber(ARGV[2])} end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', math.max(math.ceil(ahead / 1000), 1)))
end
return {1, 0}
