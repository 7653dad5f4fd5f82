-- Tasks waiting per queue and records per task sampled from each non-empty queue, for
-- many queues in one step (beat's passes read every client's queue).
-- KEYS: each queue's lists (ARGV[1] of them, the queue itself first), queue after queue.
-- Returns a flat list, three numbers per queue: tasks waiting (all its lists), then the
-- records per task of its newest and its oldest task, from the argsrepr header the
-- bridge writes, "('af-9', <500 event records>)" (-1 where a task does not say, or the
-- queue itself is empty), as lua/records_per_task.lua reads them.
local lists = tonumber(ARGV[1])
local out = {}
for first = 1, #KEYS, lists do
  local queued = 0
  for i = first, first + lists - 1 do
    queued = queued + redis.call('LLEN', KEYS[i])
  end
  out[#out + 1] = queued
  for _, index in ipairs({0, -1}) do
    local message = queued > 0 and redis.call('LINDEX', KEYS[first], index)
    -- The headers come after the body: search the tail, not the whole message.
    local n = message and string.match(string.sub(message, -4096), '<(%d+) [%w_]+ records>')
    out[#out + 1] = tonumber(n or -1)
  end
end
return out
