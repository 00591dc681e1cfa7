-- Append the device id of every target of the challenge stored at `record_key` to `reply`:
-- prepended to the scripts that end a challenge, whose caller clears those inboxes.
local function with_targets(reply, record_key)
  local record = redis.call('GET', record_key)
  if record then
    for _, target in ipairs(cjson.decode(record).targets) do
      table.insert(reply, target.device_id)
    end
  end
  return reply
end
