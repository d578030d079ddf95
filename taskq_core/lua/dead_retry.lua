-- Move dead-lettered tasks back to the front of their queue.
-- KEYS: queue(*) + result...
-- (the queue's keys, then the result key of each task, in the order of the ids)
-- ARGV: ids. Returns how many were moved. A task whose message body is missing
-- (dead-lettered by fetch.lua with "message body missing") cannot run: it stays in the
-- dead-letter queue, to be purged, and is not counted.
local ready, msg, state = KEYS[K.ready], KEYS[K.msg], KEYS[K.state]
local dead, err, wake = KEYS[K.dead], KEYS[K.error], KEYS[K.wake]
local retried = 0
for i, id in ipairs(ARGV) do
  if redis.call('HEXISTS', msg, id) == 1 and redis.call('ZREM', dead, id) == 1 then
    redis.call('HDEL', err, id)
    redis.call('DEL', KEYS[QK + i])
    -- back in the queue, a task has no state entry (see enqueue.lua)
    redis.call('HDEL', state, id)
    redis.call('RPUSH', ready, id)
    retried = retried + 1
  end
end
if retried > 0 then
  redis.call('HINCRBY', KEYS[K.stats], 'dead_retried', retried)
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
end
return retried
