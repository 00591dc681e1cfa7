-- GCRA step, in unix microseconds: prepended to every script that takes rate tokens (Lua
-- numbers are doubles: exact for integers below 2^53 µs, year 2255). Returns allowed (1/0)
-- and, when refused, the microseconds until a token is free.
local function gcra(key, interval, burst, now, consume)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local ahead = new_tat - now
  if ahead > burst then return 0, ahead - burst end
  if consume then
    redis.call('SET', key, string.format('%d', new_tat), 'PX', string.format('%d', math.max(math.ceil(ahead / 1000), 1)))
  end
  return 1, 0
end
