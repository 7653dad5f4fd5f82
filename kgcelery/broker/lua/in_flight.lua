-- Tasks in flight per routing key, without reading their bodies.
-- KEYS: kombu's unacked hash, kgcelery's in-flight index (tag -> routing key).
-- Every tag in the unacked hash is in flight (kombu removes it on ack, and on restore
-- after the visibility timeout); its routing key comes from the index the take script
-- writes. A tag the index does not know (a message recorded by kombu itself, e.g. a
-- worker without kgcelery's transport) is read the old way, from its stored value's
-- tail. Index entries whose tag left the unacked hash are pruned here.
-- A task of several clients (kgcelery.broker.merge) has all their routing keys in the
-- index, space-separated: it counts as in flight for each.
-- Returns a flat list: routing key, count, routing key, count...
local counts = {}
for _, tag in ipairs(redis.call('HKEYS', KEYS[1])) do
  local key = redis.call('HGET', KEYS[2], tag)
  if not key then
    local value = redis.call('HGET', KEYS[1], tag)
    key = value and string.match(string.sub(value, -300), '"([^"]*)"%s*%]%s*$')
  end
  if key then
    for one in string.gmatch(key, '%S+') do counts[one] = (counts[one] or 0) + 1 end
  end
end
for _, tag in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('HEXISTS', KEYS[1], tag) == 0 then redis.call('HDEL', KEYS[2], tag) end
end
local out = {}
for key, n in pairs(counts) do out[#out + 1] = key; out[#out + 1] = n end
return out
