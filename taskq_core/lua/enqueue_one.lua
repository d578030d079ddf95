-- Enqueue one task that is due now and has no idempotency key, atomically: the enqueue a web
-- request makes, in four commands (enqueue.lua takes every other case and batches; the two
-- agree on every key they write).
-- KEYS: queue(ready, msg, stats, wake) + result
-- (only those keys of the queue, then the task's result key)
-- ARGV: id, the stats field of its task ('enqueued|' .. name), message.
-- Returns 1, or 0 when the task id is known already: a re-sent enqueue (a retry after a
-- timeout or a lost connection) adds nothing. A known task has a message (queued, scheduled,
-- running, retrying, dead-lettered) or, once finished or cancelled, its result record.
if redis.call('EXISTS', KEYS[QK + 1]) == 1 or redis.call('HSETNX', KEYS[K.msg], ARGV[1], ARGV[3]) == 0 then
  return 0
end
-- a worker that emptied the queue sleeps on its wake list: the push that makes the queue
-- non-empty wakes one (enqueue.lua and fetch.lua say more)
if redis.call('LPUSH', KEYS[K.ready], ARGV[1]) == 1 and redis.call('LLEN', KEYS[K.wake]) == 0 then
  redis.call('LPUSH', KEYS[K.wake], '1')
end
redis.call('HINCRBY', KEYS[K.stats], ARGV[2], 1)
return 1
