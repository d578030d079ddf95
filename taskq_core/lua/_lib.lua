-- Shared by the scripts (prepended when they are loaded, after the prelude brokers/scripts.py
-- generates: QK, the number of a queue's keys in KEYS, and K, the offset of each by name).
-- unpack() is bounded by Lua's C stack (8,000 values): long lists go to Redis in slices.
local function slices(cmd, key, list, step)
  local reply = 0
  for i = 1, #list, step do
    reply = redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
  return reply
end

-- the replies of a command that answers field by field (HMGET, ZMSCORE), for any number of
-- fields; a missing one is false
local function each(cmd, key, fields)
  local values = {}
  for i = 1, #fields, 1000 do
    local part = redis.call(cmd, key, unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do values[#values + 1] = part[j] end
  end
  return values
end

-- Fences (docs/architecture.md, "Fences"): a task on its first delivery has no entry in the
-- fence hash, its fence is 1 while it is leased. `entry` is what HGET/HMGET gave for it.
local function fence_of(entry)
  return entry or '1'
end

-- A delivery ended without settling its task for good (retry, failure, hand-back, lapse):
-- a first delivery's fence is written, so the next delivery's HINCRBY counts on from it.
local function keep_fence(fence, id, entry)
  if not entry then redis.call('HSET', fence, id, 1) end
end

-- a dead-letter entry with its reason record, for a task that never reached an outcome
-- (k: the offset of the queue's keys in KEYS; scripts over several queues step by QK)
local function dead_letter(k, id, now, kind, message, attempts)
  redis.call('ZADD', KEYS[k + K.dead], now, id)
  redis.call('HSET', KEYS[k + K.state], id, 'dead')
  redis.call('HSET', KEYS[k + K.error], id, cjson.encode({
    status = 'dead',
    error = {type = kind, message = message, traceback = ''},
    attempts = attempts,
    finished_at = now,
  }))
  redis.call('HINCRBY', KEYS[k + K.stats], 'dead', 1)
  redis.call('PUBLISH', string.sub(KEYS[k + K.ready], 1, -6) .. 'done', id)
end

-- An id in a ready or suspect list without a message (deleted under the queue's feet,
-- evicted): it cannot run, and it must not vanish without a trace.
local function body_missing(k, id, now)
  redis.call('HINCRBY', KEYS[k + K.stats], 'orphans', 1)
  dead_letter(k, id, now, 'MissingMessage', 'message body missing', 0)
end

-- The poison rule (docs/delivery.md, "Poison tasks"), the one place it is written: a delivery
-- of `id` ended without an outcome (its lease lapsed; or it was handed back after its
-- worker process crashed or tripped over an internal error). The deliveries without an
-- outcome are the fence minus those accounted for (the `accounted` hash: outcomes and
-- graceful hand-backs). When they reach `maxd` the task is dead-lettered with
-- the reason `kind` / `why`; before that it becomes a suspect, leased only alone to a worker
-- that holds nothing else (fetch.lua), so it cannot take innocent tasks down with it again.
-- `entry`: what HGET gave for its fence. Returns true when it was dead-lettered.
local function no_outcome(k, id, entry, maxd, now, kind, why)
  local fence, accounted = KEYS[k + K.fence], KEYS[k + K.accounted]
  local wake = KEYS[k + K.wake]
  keep_fence(fence, id, entry)
  local had = tonumber(redis.call('HGET', accounted, id) or '0')
  local without = tonumber(fence_of(entry)) - had
  if without >= maxd then
    -- now accounted for, so that a retry from the dead-letter queue starts from nothing
    redis.call('HINCRBY', accounted, id, without)
    local message = 'delivered ' .. without .. ' times without finishing; ' .. why
    dead_letter(k, id, now, kind, message, without)
    return true
  end
  redis.call('LPUSH', KEYS[k + K.suspect], id)
  -- an idle worker takes it at once (one token at most, as enqueue.lua)
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
  return false
end

-- "Now" in ms (docs/architecture.md, "Time"): the caller's time when it passed one (a test's
-- ManualClock), else the server's own clock. One clock for every lease and due time, so a
-- host whose clock runs ahead cannot expire the leases of the others.
local function now_ms(arg)
  local given = tonumber(arg)
  if given and given > 0 then return given end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
