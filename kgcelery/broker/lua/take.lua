-- Pop the oldest message of the first non-empty queue and record it as kombu's Redis
-- transport records an unacknowledged message, in one step (kgcelery/broker/transport.py).
-- KEYS: unacked hash, unacked index, in-flight queue index, then the queues in the
-- order to take from. ARGV: for each queue, '1' to record what is taken from it ('0':
-- consumed without acks, such as Celery's reply queues, which kombu never records);
-- then the most records and bytes to take at once ('0': one message, see below), and
-- the most clients whose tasks are taken at once ('1' or absent: one client).
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
-- bytes given; each is recorded as the first is. With more than one client allowed (a
-- fleet worker's queues), the bridge's tasks at the heads of the other queues are taken
-- the same way, queue by queue in the order given, within the same records and bytes
-- (a head too large for what is left is left for its own take).
local queues = #KEYS - 3
local max_records = tonumber(ARGV[queues + 1] or '0') or 0
local max_bytes = tonumber(ARGV[queues + 2] or '0') or 0
local max_clients = tonumber(ARGV[queues + 3] or '1') or 1
local MAX_MESSAGES = 256
-- Heads of other queues looked at and left (too large, or not the bridge's): each is a
-- copy of up to ~1 MB (a loud client's task), so the search for more clients stops after
-- this many.
local MAX_MISSES = 4

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

-- What is taken so far: the reply, and the records and bytes it holds.
local out, count, bytes = nil, 0, 0

-- Takes the oldest message of a queue when it is a bridge task of the given client (any
-- client: nil) that fits in what is left; returns its client, or nil (nothing taken).
local function take_head(key, client)
  if #out >= 4 + 2 * MAX_MESSAGES then
    return nil
  end
  local message = redis.call('LINDEX', key, -1)
  if not message or bytes + #message > max_bytes then
    return nil
  end
  local tail = string.sub(message, -2048)
  local its_client, its_count = mergeable(tail)
  local tag, exchange, routing_key = recordable(tail)
  if not its_client or not tag or (client and its_client ~= client)
      or count + its_count > max_records then
    return nil
  end
  redis.call('LTRIM', key, 0, -2)  -- the message just read: no second copy
  record(message, tag, exchange, routing_key)
  out[#out + 1] = message
  out[#out + 1] = tag
  count = count + its_count
  bytes = bytes + #message
  return its_client
end

-- The client's tasks behind the one taken, while they fit.
local function take_followers(key, client)
  while count < max_records and take_head(key, client) do
  end
end

for i = 4, #KEYS do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    local tail = string.sub(message, -2048)
    local tag, exchange, routing_key = nil, nil, nil
    if ARGV[i - 3] == '1' then
      tag, exchange, routing_key = recordable(tail)
    end
    out = {KEYS[i], message, tag or '', ''}
    if tag then
      record(message, tag, exchange, routing_key)
      local client = nil
      if max_records > 1 then
        client, count = mergeable(tail)
      end
      count, bytes = count or 0, #message
      if client then
        take_followers(KEYS[i], client)
        -- Other clients' queues, from the next one on in the order given.
        local clients, misses = 1, 0
        for step = 1, queues - 1 do
          if clients >= max_clients or count >= max_records or misses >= MAX_MISSES then
            break
          end
          local j = 4 + (i - 4 + step) % queues
          if ARGV[j - 3] == '1' and redis.call('LLEN', KEYS[j]) > 0 then
            local other = take_head(KEYS[j], nil)
            if other then
              clients = clients + 1
              take_followers(KEYS[j], other)
            else
              misses = misses + 1
            end
          end
        end
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
