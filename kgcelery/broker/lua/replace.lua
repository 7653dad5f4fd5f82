-- Record a merged message as unacknowledged in place of the messages it carries, in one
-- step (kgcelery/broker/merge.py): a worker lost before this gets the messages again one
-- by one, after it the merged one; never both.
-- KEYS: unacked hash, unacked index, in-flight queue index.
-- ARGV: the merged tag, its stored value ([message, exchange, routing_key]), its routing
-- key, then the tags it replaces.
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(now[2]) / 1000000, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
for i = 4, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return #ARGV - 3
