-- Pop the oldest message of the first non-empty queue and record it as kombu's Redis
-- transport records an unacknowledged message, in one step (kgcelery/broker/transport.py).
-- KEYS: unacked hash, unacked index, in-flight queue index, then the queues in the
-- order to take from. ARGV: for each queue, '1' to record what is taken from it ('0':
-- consumed without acks, such as Celery's reply queues, which kombu never records).
-- Returns {queue, message, tag, a queue that is not empty or ''} or false. The stored
-- value is kombu's [message, exchange, routing_key] (QoS.append), built around the
-- message's own JSON so that nothing is decoded; a message without a tag is returned
-- unrecorded (tag ''), and kombu records it the usual way. The score is the server's
-- time, as kombu's client time would be. The in-flight index (tag -> routing key)
-- lets the control plane count tasks in flight without reading their bodies.
for i = 4, #KEYS do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    -- kombu writes the properties last: searching the tail, not the ~1 MB body, makes
    -- the take 4x cheaper. Found nowhere (another layout): kombu records it as usual.
    local tail = string.sub(message, -2048)
    local tag = ARGV[i - 3] == '1' and string.match(tail, '"delivery_tag":%s*"([^"]+)"')
    local info = string.match(tail, '"delivery_info":%s*(%b{})')
    local exchange = info and string.match(info, '"exchange":%s*"([^"]*)"')
    local routing_key = info and string.match(info, '"routing_key":%s*"([^"]*)"')
    if tag and exchange and routing_key then
      local now = redis.call('TIME')
      redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(now[2]) / 1000000, tag)
      redis.call('HSET', KEYS[1], tag,
                 '[' .. message .. ',"' .. exchange .. '","' .. routing_key .. '"]')
      redis.call('HSET', KEYS[3], tag, routing_key)
    else
      tag = ''
    end
    -- A queue that still has messages: the next wait is on it, so it returns at once.
    -- This one first (a backlog usually has more), then the others in order.
    local ready = ''
    if redis.call('LLEN', KEYS[i]) > 0 then
      ready = KEYS[i]
    else
      for j = 4, #KEYS do
        if j ~= i and redis.call('LLEN', KEYS[j]) > 0 then
          ready = KEYS[j]
          break
        end
      end
    end
    return {KEYS[i], message, tag, ready}
  end
end
return false
