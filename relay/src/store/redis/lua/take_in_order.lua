-- Charge each bucket in order, stopping at the first that refuses (later ones untouched).
-- KEYS buckets (one hash tag); ARGV now_us, then interval_us and burst_us per bucket.
-- Returns {0, 0} when all allowed, else {1-based index of the refusing bucket, retry_after_us}.
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local allowed, retry = gcra(key, tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]), now, true)
  if allowed == 0 then return {i, retry} end
end
return {0, 0}
