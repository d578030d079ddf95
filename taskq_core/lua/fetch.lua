#!lua flags=allow-oom
-- allow-oom: leasing drains the queue, the only way a full Redis frees memory. No other flag:
-- the script may write and runs in a cluster (no-cluster unset); a flagged script may not use
-- keys of a slot other than its declared keys', and every key it uses is in KEYS.
-- Lease up to `want` tasks from several queues in strict priority order, atomically.
-- Also re-queues tasks whose lease lapsed (the poison rule, _lib.lua's no_outcome: they
-- become suspects, or are dead-lettered after max_deliveries deliveries without an outcome)
-- and promotes delayed tasks that are due.
-- KEYS: queue(*) x nqueues
-- (every key of each queue, QK per queue, the queues in priority order)
-- ARGV: now_ms (0: the server's clock), lease_ms, want, max_deliveries, nqueues, alone ('1':
-- the caller holds no lease, so it may be given a suspect)
-- Returns {next_due_ms or -1, now_ms, suspects waiting, 1 if this batch is a suspect (alone)
-- else 0, q1, id1, fence1, message1, q2, ...} (q is the 0-based queue index; now_ms the time
-- used, so a worker sleeps until next_due by the same clock).
-- A first delivery costs no command of its own: its fence is 1, written nowhere (see
-- docs/architecture.md, "fences"); a later one costs one HINCRBY. The rest is one command
-- per batch; while no suspect waits, suspects cost one EXISTS.
local now = now_ms(ARGV[1])
local lease = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local maxd = tonumber(ARGV[4])
local nqueues = tonumber(ARGV[5])
local alone = ARGV[6] == '1'
local out = {-1, now, 0, 0}
local got = 0
local next_due = -1
local deadline = now + lease
for q = 0, nqueues - 1 do
  local k = q * QK
  local ready, delayed, leased = KEYS[k + K.ready], KEYS[k + K.delayed], KEYS[k + K.leased]
  local fence, stats = KEYS[k + K.fence], KEYS[k + K.stats]
  -- 1. leases that lapsed: the worker died or froze
  local lapsed = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, 100)
  local lapsed_gates = gates_of(k, lapsed)
  for i, id in ipairs(lapsed) do
    redis.call('ZREM', leased, id)
    -- its concurrency slots free themselves with the lease (flow control)
    if lapsed_gates and lapsed_gates[i] then gate_end(k, id, lapsed_gates[i]) end
    redis.call('HINCRBY', stats, 'lease_expired', 1)
    no_outcome(k, id, redis.call('HGET', fence, id), maxd, now, 'PoisonTask',
      'its worker died or froze each time')
  end
  -- 2. delayed tasks that are due (at most 1000 a call: unpack() is bounded)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
    redis.call('HDEL', KEYS[k + K.state], unpack(due))
    for _, id in ipairs(due) do
      redis.call('LPUSH', ready, id)
    end
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] then
    local first_due = tonumber(first[2])
    if next_due < 0 or first_due < next_due then next_due = first_due end
  end
end
-- 3. suspects (tasks with a delivery that ended without an outcome): one, alone, to a
-- caller that holds nothing, highest priority first; the others are told how many wait
local lists = {}
for q = 0, nqueues - 1 do lists[q + 1] = KEYS[q * QK + K.suspect] end
if redis.call('EXISTS', unpack(lists)) > 0 then
  local waiting = 0
  for q = 0, nqueues - 1 do
    local k = q * QK
    while alone and want > 0 and got == 0 do
      local id = redis.call('RPOP', lists[q + 1])
      if not id then break end
      local body = redis.call('HGET', KEYS[k + K.msg], id)
      local g = body and redis.call('HGET', KEYS[k + K.gate], id)
      if g and not gate_admit(k, id, decode_gate(g), now, true) then
        -- waits for a concurrency slot, still a suspect (flow control)
      elseif body then
        local fence = KEYS[k + K.fence]
        keep_fence(fence, id, redis.call('HGET', fence, id))
        local given = redis.call('HINCRBY', fence, id, 1)
        redis.call('ZADD', KEYS[k + K.leased], deadline, id)
        out[4] = 1
        out[#out + 1] = q
        out[#out + 1] = id
        out[#out + 1] = given
        out[#out + 1] = body
        got = 1
      else
        body_missing(k, id, now)
      end
    end
    waiting = waiting + redis.call('LLEN', lists[q + 1])
  end
  out[3] = waiting
end
-- 4. lease what is ready, highest priority first (nothing more with a suspect). A task a
-- flow-control gate parks (delayed by a rate limit, waiting for a slot) leaves the ready
-- list, so popping again makes progress; at most `examine` ids a call are looked at.
local parked = false
local examine = want * 4 + 100
for q = 0, nqueues - 1 do
  if got >= want or out[4] == 1 then break end
  local k = q * QK
  local ids = redis.call('RPOP', KEYS[k + K.ready], want - got)
  while ids do
    examine = examine - #ids
    local fence = KEYS[k + K.fence]
    local bodies = each('HMGET', KEYS[k + K.msg], ids)
    local fences = each('HMGET', fence, ids)
    local gates = gates_of(k, ids)
    local skip, parked_now = {}, false
    if gates then
      for i, id in ipairs(ids) do
        if bodies[i] and gates[i] then
          local admitted, due = gate_admit(k, id, gates[i], now, false)
          if not admitted then
            skip[i] = true  -- parked: not leased, not an attempt
            parked_now = true
            if due and (next_due < 0 or due < next_due) then next_due = due end
          end
        end
      end
    end
    parked = parked or parked_now
    local held = {}
    -- ids delivered in this batch: an id listed twice (never in normal operation) still
    -- gets a new fence for each delivery
    local given = {}
    for i, id in ipairs(ids) do
      local body = bodies[i]
      if skip[i] then
        -- parked by its gate (flow control)
      elseif body then
        local this_fence = 1
        if fences[i] or given[id] then
          if given[id] == 1 then keep_fence(fence, id, fences[i]) end
          this_fence = redis.call('HINCRBY', fence, id, 1)
        end
        given[id] = this_fence
        held[#held + 1] = deadline
        held[#held + 1] = id
        out[#out + 1] = q
        out[#out + 1] = id
        out[#out + 1] = this_fence
        out[#out + 1] = body
        got = got + 1
      else
        body_missing(k, id, now)
      end
    end
    slices('ZADD', KEYS[k + K.leased], held, 2000)
    ids = false
    if got < want and examine > 0 and parked_now then
      ids = redis.call('RPOP', KEYS[k + K.ready], math.min(want - got, examine))
    end
  end
end
-- pass the baton: if work remains, make sure one sleeper wakes up for it (also when
-- parking tasks used up this call's look: what is behind them is not left waiting)
if got >= want or parked then
  for q = 0, nqueues - 1 do
    if redis.call('LLEN', KEYS[q * QK + K.ready]) > 0 then
      local wake = KEYS[q * QK + K.wake]
      if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
      break
    end
  end
end
out[1] = next_due
return out
