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

-- the unique key `u` of `id` is let go (if `id` still holds it)
local function unique_free(k, id, u)
  local unique = KEYS[k + K.unique]
  if redis.call('HGET', unique, u[1]) == id then
    redis.call('HDEL', unique, u[1])
    redis.call('ZREM', KEYS[k + K.unique_until], u[1])
  end
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
  -- a workflow's step: its workflow learns of it from the queue's outbox (wf_end.lua)
  if string.sub(id, 1, 3) == 'wf_' then redis.call('LPUSH', KEYS[k + K.wfout], id) end
  -- a unique task lets go of its key (flow control: gate_admit, below)
  local raw = redis.call('HGET', KEYS[k + K.gate], id)
  local ok, g = pcall(cjson.decode, raw or '')
  local u = raw and ok and type(g) == 'table' and g.u
  if type(u) == 'table' and type(u[1]) == 'string' then unique_free(k, id, u) end
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

-- Flow control (taskq_core/flow, docs/flow-control.md). A task that declares a limit, an
-- expiry or uniqueness has a gate, stored at enqueue in the queue's `gate` hash as JSON:
--   r: {{count, period_ms, burst, key}, ...}  rate limits (GCRA), cluster-wide per key
--   c: {{n, key}, ...}                         concurrency caps, held as leases
--   e: ms                                      not started by then: not run (expired)
--   u: {key, 's' | 'f'}                        unique until started / finished
-- A task without a gate costs one EXISTS per queue per fetch and settle, nothing more.

-- A counter of the `slots` hash (slots held, the waiters' sequence) as a number. One that is
-- not (written into Redis by something else) is reset to 0 rather than failing HINCRBY,
-- which would fail every fetch.
local function slot_count(slots, field)
  local raw = redis.call('HGET', slots, field)
  local n = tonumber(raw or '0')
  if n == nil or n ~= math.floor(n) then
    redis.call('HSET', slots, field, 0)
    return 0
  end
  return n
end

-- a task waiting for a slot of cap key `key` (flag 'r': it goes back to ready when one
-- frees; 's': back to the suspects, so a crasher stays alone)
local function cap_park(k, id, key, flag)
  local slots = KEYS[k + K.slots]
  slot_count(slots, 'seq')
  local seq = redis.call('HINCRBY', slots, 'seq', 1)
  local member = key .. '\0' .. string.format('%016d', seq) .. '\0' .. flag .. id
  redis.call('ZADD', KEYS[k + K.capwait], 0, member)
  redis.call('HSET', slots, 'w|' .. id, member)
  redis.call('HSET', KEYS[k + K.state], id, 'waiting')
  redis.call('HINCRBY', KEYS[k + K.stats], 'capped', 1)
end

-- May `id` (gate `g`) be leased now? Returns 'run' (its slots are taken, its rate tokens
-- spent), 'expired' (deliver it: the worker records it as expired, nothing taken), or
-- false (parked: delayed until its rates allow, or waiting for a slot; the second value
-- is the due time when delayed). Caps are checked first: a task that cannot get a slot
-- spends no token. `suspect`: rates are not applied (its delivery is a re-run).
-- Parked tasks of one rate key are due one interval apart, after the last one parked (kept
-- as `p|<key>` in the same sorted set, pruned alike): a backlog comes back in order, about
-- once each, and is not re-parked wholesale at every token.
local function gate_admit(k, id, g, now, suspect)
  if g.bad then
    -- not what a producer writes: refused once, with its reason, and nothing stops
    dead_letter(k, id, now, 'BadGate', 'its flow-control gate is malformed: ' .. g.bad, 0)
    return false
  end
  if g.e and now >= g.e then return 'expired' end
  local slots = KEYS[k + K.slots]
  if g.c then
    for _, c in ipairs(g.c) do
      if slot_count(slots, c[2]) >= c[1] then
        cap_park(k, id, c[2], suspect and 's' or 'r')
        return false
      end
    end
  end
  if g.r and not suspect then
    local rates = KEYS[k + K.rates]
    local allow_at, tats, step, burst, first = 0, {}, 0, 1, g.r[1][4]
    for i, r in ipairs(g.r) do
      local interval = r[2] / r[1]
      local tat = tonumber(redis.call('ZSCORE', rates, r[4]) or '0')
      if tat < now then tat = now end
      -- GCRA: admitted when at most `burst` intervals are already owed
      local at = tat + interval - interval * r[3]
      if at > allow_at then allow_at = at end
      if interval > step then step, burst = interval, r[3] end
      tats[i] = tat + interval
    end
    if allow_at > now then
      local line = 'p|' .. first
      local place = allow_at
      local last = tonumber(redis.call('ZSCORE', rates, line) or '0')
      if last + step > place then place = last + step end
      redis.call('ZADD', rates, place, line)
      -- places closer than 10 ms share one due time (as many as the burst lets start at
      -- once): one fetch starts them together, not one fetch per token
      local bucket = math.min(10, step * burst)
      local due = math.ceil(place)
      if bucket > step then due = math.ceil(place / bucket) * bucket end
      redis.call('ZADD', KEYS[k + K.delayed], due, id)
      redis.call('HSET', KEYS[k + K.state], id, 'throttled')
      redis.call('HINCRBY', KEYS[k + K.stats], 'throttled', 1)
      return false, due
    end
    for i, r in ipairs(g.r) do
      redis.call('ZADD', rates, tats[i], r[4])
    end
    -- entries in the past mean the same as none: the state expires by itself
    redis.call('ZREMRANGEBYSCORE', rates, '-inf', '(' .. (now - 1))
  end
  if g.c then
    for _, c in ipairs(g.c) do redis.call('HINCRBY', slots, c[2], 1) end
    redis.call('HSET', slots, 'h|' .. id, 1)
  end
  if g.u and g.u[2] == 's' then unique_free(k, id, g.u) end
  return 'run'
end

-- A lease of `id` (gate `g`) ended, whatever the outcome: its slots are freed and the
-- first task waiting for each goes back to its queue (at the front: it waited its turn).
-- Safe to call twice: only a lease that took slots frees them. Returns true when a waiter
-- was woken.
local function gate_end(k, id, g)
  if not g.c then return false end
  local slots = KEYS[k + K.slots]
  if redis.call('HDEL', slots, 'h|' .. id) == 0 then return false end
  local woke = false
  for _, c in ipairs(g.c) do
    slot_count(slots, c[2])
    if redis.call('HINCRBY', slots, c[2], -1) <= 0 then redis.call('HDEL', slots, c[2]) end
    local first = redis.call('ZRANGEBYLEX', KEYS[k + K.capwait], '[' .. c[2] .. '\0',
      '[' .. c[2] .. '\0\255', 'LIMIT', 0, 1)[1]
    if first then
      redis.call('ZREM', KEYS[k + K.capwait], first)
      local at = #c[2] + 19  -- after '<key>\0<16 digits>\0'
      local flag, waiter = string.sub(first, at, at), string.sub(first, at + 1)
      redis.call('HDEL', slots, 'w|' .. waiter)
      redis.call('HDEL', KEYS[k + K.state], waiter)
      local back = flag == 's' and KEYS[k + K.suspect] or KEYS[k + K.ready]
      redis.call('RPUSH', back, waiter)
      woke = true
    end
  end
  return woke
end

-- A stored gate as a table; one that is not what taskq_core/flow writes becomes
-- {bad = why} (gate_admit dead-letters its task): a forged or corrupt gate must neither
-- stop the fetch (a Lua error fails the whole call, for every worker) nor hold a task forever.
local function is_count(v) return type(v) == 'number' and v >= 1 and v == math.floor(v) end
local function is_key(v) return type(v) == 'string' and #v > 0 and #v <= 512 end
local function decode_gate(raw)
  local ok, g = pcall(cjson.decode, raw)
  -- (an array decodes to a table too: its first element gives it away; [] is {} to cjson)
  if not ok or type(g) ~= 'table' or g[1] ~= nil then return {bad = 'not a JSON object'} end
  if g.r ~= nil then
    if type(g.r) ~= 'table' or #g.r == 0 then return {bad = 'r'} end
    for _, r in ipairs(g.r) do
      if type(r) ~= 'table' or not (is_count(r[1]) and is_count(r[2]) and is_count(r[3])
          and is_key(r[4])) then
        return {bad = 'r'}
      end
    end
  end
  if g.c ~= nil then
    if type(g.c) ~= 'table' or #g.c == 0 then return {bad = 'c'} end
    for _, c in ipairs(g.c) do
      if type(c) ~= 'table' or not (is_count(c[1]) and is_key(c[2])) then return {bad = 'c'} end
    end
  end
  if g.e ~= nil and type(g.e) ~= 'number' then return {bad = 'e'} end
  if g.u ~= nil and (type(g.u) ~= 'table' or not is_key(g.u[1])
      or (g.u[2] ~= 's' and g.u[2] ~= 'f')) then
    return {bad = 'u'}
  end
  return g
end

-- the gates of `ids` (false where none), read only when the queue has any
local function gates_of(k, ids)
  if #ids == 0 or redis.call('EXISTS', KEYS[k + K.gate]) == 0 then return nil end
  local raw = each('HMGET', KEYS[k + K.gate], ids)
  for i = 1, #ids do
    if raw[i] then raw[i] = decode_gate(raw[i]) end
  end
  return raw
end

-- a task waiting for a slot leaves the wait (cancelled)
local function cap_unpark(k, id)
  local slots = KEYS[k + K.slots]
  local member = redis.call('HGET', slots, 'w|' .. id)
  if member then
    redis.call('ZREM', KEYS[k + K.capwait], member)
    redis.call('HDEL', slots, 'w|' .. id)
    return true
  end
  return false
end
