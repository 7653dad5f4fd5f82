-- Pop the oldest message of the first non-empty queue and record it as kombu's Redis
-- transport records an unacknowledged message, in one step (kgcelery/broker/transport.py).
-- KEYS: unacked hash, unacked index, in-flight queue index, then the queues in the
-- order to take from. ARGV: for each queue, '1' to record what is taken from it ('0':
-- consumed without acks, such as Celery's reply queues, which kombu never records);
-- then the most records and bytes to take at once ('0': one message, see below).
-- Returns {queue, message, tag, a queue that is not empty or '', [message, tag]...} or
-- false. The stored value is kombu's [message, exchange, routing_key] (QoS.append), built
-- around the message's own JSON so that nothing is decoded; a message without a tag is
-- returned unrecorded (tag ''), and kombu records it the usual way. The score is the
-- server's time, as kombu's client time would be. The in-flight index (tag -> routing
-- key) lets the control plane count tasks in flight without reading their bodies.
--
-- Merging (kgcelery/broker/merge.py): when the message taken is one the bridge published
-- (origin kgcelery-bridge, never retried nor delayed), the bridge's messages of the same
-- client behind it are taken too, oldest first, while they hold at most the records and
-- bytes given; each is recorded as the first is.
local queues = #KEYS - 3
local max_records = tonumber(ARGV[queues + 1] or '0') or 0
local max_bytes = tonumber(ARGV[queues + 2] or '0') or 0
local MAX_MESSAGES = 256

-- kombu writes the properties last: searching the tail, not the ~1 MB body, makes
-- the take 4x cheaper. Found nowhere (another layout): kombu records it as usual.
local function recordable(tail)
  local tag = string.match(tail, '"delivery_tag":%s*"([^"]+)"')
  local info = string.match(tail, '"delivery_info":%s*(%b{})')
  local exchange = info and string.match(info, '"exchange":%s*"([^"]*)"')
  local routing_key = info and string.match(info, '"routing_key":%s*"([^"]*)"')
  if tag and exchange and routing_key then
    return tag, exchange, routing_key
  end
  return nil
end

local function record(message, tag, exchange, routing_key)
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(now[2]) / 1000000, tag)
  redis.call('HSET', KEYS[1], tag,
             '[' .. message .. ',"' .. exchange .. '","' .. routing_key .. '"]')
  redis.call('HSET', KEYS[3], tag, routing_key)
end

-- The client and record count of a task the bridge published and nobody retried or
-- delayed (its headers: origin, retries, eta, argsrepr), or nil.
local function mergeable(tail)
  if not (string.find(tail, '"origin":%s*"kgcelery%-bridge"')
          and string.find(tail, '"retries":%s*0[,}]')
          and string.find(tail, '"eta":%s*null')) then
    return nil
  end
  local client, count = string.match(tail, [["argsrepr":%s*"%('([^']*)', <(%d+) ]])
  return client, tonumber(count)
end

for i = 4, #KEYS do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    local tail = string.sub(message, -2048)
    local tag, exchange, routing_key = nil, nil, nil
    if ARGV[i - 3] == '1' then
      tag, exchange, routing_key = recordable(tail)
    end
    local out = {KEYS[i], message, tag or '', ''}
    if tag then
      record(message, tag, exchange, routing_key)
      local client, count = nil, 0
      if max_records > 1 then
        client, count = mergeable(tail)
      end
      -- Full already: no need to look at the next message (a copy of up to ~1 MB).
      if client and count >= max_records then
        client = nil
      end
      local bytes = #message
      while client and #out < 4 + 2 * MAX_MESSAGES do
        local next_message = redis.call('LINDEX', KEYS[i], -1)
        if not next_message or bytes + #next_message > max_bytes then
          break
        end
        local next_tail = string.sub(next_message, -2048)
        local next_client, next_count = mergeable(next_tail)
        local next_tag, next_exchange, next_key = recordable(next_tail)
        if next_client ~= client or not next_tag or count + next_count > max_records then
          break
        end
        redis.call('RPOP', KEYS[i])
        record(next_message, next_tag, next_exchange, next_key)
        out[#out + 1] = next_message
        out[#out + 1] = next_tag
        count = count + next_count
        bytes = bytes + #next_message
      end
    end
    -- A queue that still has messages: the next wait is on it, so it returns at once.
    -- This one first (a backlog usually has more), then the others in order.
    if redis.call('LLEN', KEYS[i]) > 0 then
      out[4] = KEYS[i]
    else
      for j = 4, #KEYS do
        if j ~= i and redis.call('LLEN', KEYS[j]) > 0 then
          out[4] = KEYS[j]
          break
        end
      end
    end
    return out
  end
end
return false
