-- Move dead-lettered tasks back to the front of their queue.
-- KEYS[1..QK]: the queue's keys; KEYS[QK + 1..]: the result key of each task. ARGV: ids.
-- Returns how many were moved. A task whose message body is missing (dead-lettered by
-- fetch.lua with "message body missing") cannot run: it stays in the dead-letter queue,
-- to be purged, and is not counted.
local ready, msg, state, dead, err, wake = KEYS[1], KEYS[4], KEYS[5], KEYS[8], KEYS[9], KEYS[11]
local n = 0
for i, id in ipairs(ARGV) do
  if redis.call('HEXISTS', msg, id) == 1 and redis.call('ZREM', dead, id) == 1 then
    redis.call('HDEL', err, id)
    redis.call('DEL', KEYS[QK + i])
    -- back in the queue, a task has no state entry (see enqueue.lua)
    redis.call('HDEL', state, id)
    redis.call('RPUSH', ready, id)
    n = n + 1
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[10], 'dead_retried', n)
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
end
return n
