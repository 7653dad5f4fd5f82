-- Records per task from the newest and the oldest task's argsrepr header, which the
-- bridge writes as "('af-9', <500 event records>)"; -1 where a task does not say.
-- KEYS: the queue.
local out = {}
for _, index in ipairs({0, -1}) do
  local message = redis.call('LINDEX', KEYS[1], index)
  -- The headers come after the body: search the tail, not the whole message.
  local n = message and string.match(string.sub(message, -4096), '<(%d+) [%w_]+ records>')
  out[#out + 1] = tonumber(n or -1)
end
return out
