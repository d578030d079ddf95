-- Enqueue one task that is due now and has no idempotency key, atomically: the enqueue a web
-- request makes, in three commands and no tables (enqueue.lua takes every other case and
-- batches; the two agree on every key they write).
-- KEYS: the queue's ready, msg, stats and wake keys.
-- ARGV: id, the stats field of its task ('enqueued|' .. name), message.
-- Returns 1.
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
-- a worker that emptied the queue sleeps on its wake list: the push that makes the queue
-- non-empty wakes one (enqueue.lua and fetch.lua say more)
if redis.call('LPUSH', KEYS[1], ARGV[1]) == 1 and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('LPUSH', KEYS[4], '1')
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 1
