-- Enqueue tasks into one queue, atomically.
-- KEYS: queue(ready, delayed, msg, state, stats, wake, gate, unique, unique_until) + result... + idempotency...
-- (only those keys of the queue: fewer keys to send on the hottest path; then the result key
-- of each task, in the order of the tasks; then the idempotency keys of the tasks that have one)
-- ARGV: now_ms (0: the server's clock), idem_ttl_ms, ntasks, then per task: id, name, message,
-- due_ms (an absolute due time, 0 = none), delay_ms (due at now + delay, 0 = none),
-- idem_key_index (its index in KEYS, 0 = none), gate (JSON, '' = none: taskq_core/flow),
-- unique key ('' = none), unique window (ms, 0 = until released)
-- Returns the task id of each task (the earlier task's id where an idempotency key or a
-- unique key matched: unique keys are held while the task is queued or running, until it
-- starts or finishes as its gate says, or its window ends).
-- Idempotent on the task id: a task whose id is known already (re-sent after a timeout or a
-- lost connection, whatever retried it) is not added again. A known task has a message
-- (queued, scheduled, running, retrying, dead-lettered) or, once finished or cancelled, its
-- result record, kept for the result TTL (docs/delivery.md).
-- Kept to few commands whatever the batch size: one HMGET and one EXISTS to find known ids,
-- one HSET of every message, one LPUSH of every ready id, one HINCRBY per task name. A
-- queued task has no state entry (it is queued while its message exists and it is neither
-- leased, scheduled nor dead).
local ready, delayed, msg, state = KEYS[K.ready], KEYS[K.delayed], KEYS[K.msg], KEYS[K.state]
local stats, wake = KEYS[K.stats], KEYS[K.wake]
local gate, unique, unique_until = KEYS[K.gate], KEYS[K.unique], KEYS[K.unique_until]
local STEP = 9  -- ARGV values per task
local idem_ttl = tonumber(ARGV[2])
local ntasks = tonumber(ARGV[3])
local now = false  -- read once, when a task has a due time (TIME is not free)
local out, bodies, ids, names, seen, given = {}, {}, {}, {}, {}, {}
local woke = false
for i = 0, ntasks - 1 do given[i + 1] = ARGV[4 + i * STEP] end
local gates = {}
local pruned = false
-- ids with a message, and how many of the batch have a result record (none, nearly always)
local known = each('HMGET', msg, given)
local finished = 0
for i = QK + 1, QK + ntasks, 1000 do
  finished = finished + redis.call('EXISTS', unpack(KEYS, i, math.min(i + 999, QK + ntasks)))
end
for i = 0, ntasks - 1 do
  local base = 4 + i * STEP
  local id, name, body = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local due, delay = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local idem_at = tonumber(ARGV[base + 5])
  local task_gate, ukey, uwindow = ARGV[base + 6], ARGV[base + 7], tonumber(ARGV[base + 8])
  local earlier = false
  if known[i + 1] or seen[id] or (finished > 0 and redis.call('EXISTS', KEYS[QK + 1 + i]) == 1) then
    earlier = id
  elseif idem_at > 0 then
    earlier = redis.call('GET', KEYS[idem_at])
    if not earlier then
      redis.call('SET', KEYS[idem_at], id, 'PX', idem_ttl)
    end
  end
  if not earlier and ukey ~= '' then
    now = now or now_ms(ARGV[1])
    if not pruned then
      -- windows that ended let go of their keys (a bounded step, on unique enqueues only)
      pruned = true
      local ended = redis.call('ZRANGEBYSCORE', unique_until, '-inf', now, 'LIMIT', 0, 100)
      if #ended > 0 then
        redis.call('ZREM', unique_until, unpack(ended))
        redis.call('HDEL', unique, unpack(ended))
      end
    end
    local holder = redis.call('HGET', unique, ukey)
    -- a holder whose message is gone (purged) holds nothing
    if holder and (seen[holder] or redis.call('HEXISTS', msg, holder) == 1) then
      earlier = holder
    else
      redis.call('HSET', unique, ukey, id)
      if uwindow > 0 then
        redis.call('ZADD', unique_until, now + uwindow, ukey)
      else
        redis.call('ZREM', unique_until, ukey)
      end
    end
  end
  if earlier then
    out[#out + 1] = earlier
  else
    seen[id] = true
    if task_gate ~= '' then
      gates[#gates + 1] = id
      gates[#gates + 1] = task_gate
    end
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = body
    if due > 0 or delay > 0 then
      now = now or now_ms(ARGV[1])
      -- a delay counts from the server's now; an absolute due time is the producer's
      if delay > 0 then due = now + delay end
    end
    if due > 0 and now and due > now then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', state, id, 'scheduled')
      -- a sleeping worker recomputes how long to sleep
      woke = true
    else
      ids[#ids + 1] = id
    end
    names[name] = (names[name] or 0) + 1
    out[#out + 1] = id
  end
end
slices('HSET', msg, bodies, 2000)
slices('HSET', gate, gates, 2000)
local len = slices('LPUSH', ready, ids, 1000)
-- a worker that emptied the queue sleeps on its wake list; while the queue is not empty, the
-- workers are busy with it and fetch again without sleeping (fetch.lua passes the baton)
if #ids > 0 and len == #ids then
  woke = true
end
-- per task name only: readers add them up for the queue (brokers/base.py, parse_stats)
for name, count in pairs(names) do
  redis.call('HINCRBY', stats, 'enqueued|' .. name, count)
end
if woke and redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
end
return out
