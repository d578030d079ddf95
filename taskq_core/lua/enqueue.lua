-- Enqueue tasks into one queue, atomically.
-- KEYS[1..6]: the queue's ready, delayed, msg, state, stats and wake keys (only those: fewer
-- keys to send on the hottest path); KEYS[7..]: idempotency keys.
-- ARGV: now_ms, idem_ttl_ms, n, then per task: id, name, message, due_ms, idem_key_index (0 = none)
-- Returns the task id of each task (the earlier task's id where an idempotency key matched).
local ready, delayed, msg, state, stats, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = tonumber(ARGV[1])
local idem_ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local out = {}
local added, pushed = 0, 0
for i = 0, n - 1 do
  local b = 4 + i * 5
  local id, name, body, due, ik = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local earlier = false
  if ik > 0 then
    earlier = redis.call('GET', KEYS[ik])
    if not earlier then
      redis.call('SET', KEYS[ik], id, 'PX', idem_ttl)
    end
  end
  if earlier then
    out[#out + 1] = earlier
  else
    redis.call('HSET', msg, id, body)
    if due > now then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', state, id, 'scheduled')
    else
      redis.call('LPUSH', ready, id)
      redis.call('HSET', state, id, 'queued')
    end
    -- a scheduled task wakes a sleeper too, so it recomputes how long to sleep
    pushed = pushed + 1
    added = added + 1
    redis.call('HINCRBY', stats, 'enqueued|' .. name, 1)
    out[#out + 1] = id
  end
end
if added > 0 then
  redis.call('HINCRBY', stats, 'enqueued', added)
end
if pushed > 0 and redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
end
return out
