#!lua flags=allow-oom
-- allow-oom: an outcome removes its task, freeing memory; refused at maxmemory, it would
-- leave the task to run again once its lease lapsed.
-- Record the outcomes of leased tasks of one queue, atomically, with fencing.
-- KEYS: queue(*) + result... + workflow...
-- (the queue's keys, then the result key of each outcome, in the order of the outcomes;
-- then, for the workflows of steps among them, each one's record and every key of each of
-- its queues: see _workflow.lua)
-- ARGV: now_ms (0: the server's clock), result_ttl_ms, noutcomes, nstats, then per outcome
-- 6 values: id, fence, kind (ok | retry | failed | dead | expired | aborted), task name,
--   record (JSON),
--   extra (retry only: 'delay_ms|new message': due at now + delay, by the same clock as leases)
-- then nstats pairs: stats field, increment (aggregated by the worker for the batch);
-- then nsteps, and per workflow step among the outcomes 7 values: its outcome's index
-- (1-based), its record's index in KEYS, the workflow id, the offset of its queues' keys in
-- KEYS, the step index, its status (succeeded | skipped | failed | cancelled), its result or
-- error (JSON). A step's outcome, when accepted, advances its workflow here: the steps
-- waiting for it are released in this same atomic step (_workflow.lua).
-- Final outcomes are announced on the channel <prefix>:{queue}:done (space-separated ids).
-- Returns the 1-based indexes of outcomes refused as stale (their lease was lost).
-- A success costs a SET (its result); the rest is one command per batch. A first
-- delivery's fence is 1 with no entry (see fetch.lua): an outcome other than success
-- writes it, so the next delivery counts on from it.
local ready, delayed, leased, msg = KEYS[K.ready], KEYS[K.delayed], KEYS[K.leased], KEYS[K.msg]
local state, fence, accounted = KEYS[K.state], KEYS[K.fence], KEYS[K.accounted]
local dead, err, stats, wake = KEYS[K.dead], KEYS[K.error], KEYS[K.stats], KEYS[K.wake]
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local noutcomes = tonumber(ARGV[3])
local nstats = tonumber(ARGV[4])
local stale, done, gone, counted, counts = {}, {}, {}, {}, {}
local woke = false
local stale_acks = 0
local ids = {}
for i = 0, noutcomes - 1 do ids[i + 1] = ARGV[5 + i * 6] end
-- fences and leases of the whole batch in two commands
local fences = each('HMGET', fence, ids)
local leases = each('ZMSCORE', leased, ids)
-- flow control, progress and abort requests: one EXISTS for the three while a queue has
-- none of them (the usual case), then the gates of the batch
local extras = redis.call('EXISTS', KEYS[K.gate], KEYS[K.progress], KEYS[K.abort]) > 0
local gates = extras and gates_of(0, ids) or nil
local woke_waiter = false
local ended = {}  -- the leases this batch ends (an id listed twice is settled once)
local ending = {}
for i = 0, noutcomes - 1 do
  local base = 5 + i * 6
  local id, given_fence, kind, name = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local record, extra = ARGV[base + 4], ARGV[base + 5]
  -- the fence must be this delivery's and the lease still held
  local entry = fences[i + 1]
  if fence_of(entry) ~= given_fence or not leases[i + 1] or ended[id] then
    stale[#stale + 1] = i + 1
    stale_acks = stale_acks + 1
  else
    ended[id] = true
    ending[#ending + 1] = id
    local g = gates and gates[i + 1]
    if g then
      -- the lease ends: its concurrency slots go to the next task waiting for them; a
      -- final outcome lets go of its unique key
      if gate_end(0, id, g) then woke_waiter = true end
      if g.u and kind ~= 'retry' then unique_free(0, id, g.u) end
    end
    -- counted here, not by the worker, so a refused (stale) outcome is never counted
    counts[kind] = (counts[kind] or 0) + 1
    local per_task = kind .. '|' .. name
    counts[per_task] = (counts[per_task] or 0) + 1
    if kind == 'ok' or kind == 'expired' or kind == 'aborted' then
      -- final without a dead-letter entry: expired (not started in time, never run) and
      -- aborted (stopped on request) are recorded as such, not as failures
      redis.call('SET', KEYS[QK + 1 + i], record, 'PX', ttl)
      gone[#gone + 1] = id
      -- only a task delivered before has fence and accounted entries to delete
      if entry then counted[#counted + 1] = id end
      done[#done + 1] = id
    else
      keep_fence(fence, id, entry)
      -- this delivery had an outcome: it does not count towards poison detection
      redis.call('HINCRBY', accounted, id, 1)
      if kind == 'retry' then
        local sep = string.find(extra, '|', 1, true)
        local due = now + tonumber(string.sub(extra, 1, sep - 1))
        redis.call('HSET', msg, id, string.sub(extra, sep + 1))
        if due > now then
          redis.call('ZADD', delayed, due, id)
          redis.call('HSET', state, id, 'scheduled')
        else
          redis.call('LPUSH', ready, id)
        end
        woke = true
      else
        -- failed (retries exhausted) or dead (could not run): kept in the dead-letter queue
        redis.call('ZADD', dead, now, id)
        redis.call('HSET', state, id, kind)
        redis.call('HSET', err, id, record)
        redis.call('SET', KEYS[QK + 1 + i], record, 'PX', ttl)
        done[#done + 1] = id
      end
    end
  end
end
slices('ZREM', leased, ending, 1000)
slices('HDEL', msg, gone, 1000)
-- a task's progress and abort request end with it
if extras and #done > 0 then
  slices('HDEL', KEYS[K.progress], done, 1000)
  slices('HDEL', KEYS[K.abort], done, 1000)
end
if gates then slices('HDEL', KEYS[K.gate], gone, 1000) end
slices('HDEL', fence, counted, 1000)
slices('HDEL', accounted, counted, 1000)
if #done > 0 then
  redis.call('PUBLISH', string.sub(ready, 1, -6) .. 'done', table.concat(done, ' '))
end
if stale_acks > 0 then counts['stale_acks'] = stale_acks end
for field, value in pairs(counts) do
  redis.call('HINCRBY', stats, field, value)
end
local first_stat = 5 + noutcomes * 6
for j = 0, nstats - 1 do
  redis.call('HINCRBY', stats, ARGV[first_stat + j * 2], ARGV[first_stat + j * 2 + 1])
end
if (woke or woke_waiter) and redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
end
local first_step = first_stat + nstats * 2
local nsteps = tonumber(ARGV[first_step] or '0') or 0
local carried, refused = {}, {}
for j = 0, nsteps - 1 do carried[tonumber(ARGV[first_step + 1 + j * 7])] = true end
for _, s in ipairs(stale) do refused[s] = true end
-- a step's task settled for good without its step (its message unreadable): its workflow
-- learns of it from the queue's outbox (wf_end.lua)
for i = 1, noutcomes do
  local id = ARGV[5 + (i - 1) * 6]
  if not carried[i] and not refused[i] and string.sub(id, 1, 3) == 'wf_'
      and ARGV[7 + (i - 1) * 6] ~= 'retry' then
    redis.call('LPUSH', KEYS[K.wfout], id)
  end
end
if nsteps > 0 then
  for j = 0, nsteps - 1 do
    local b = first_step + 1 + j * 7
    if not refused[tonumber(ARGV[b])] then
      local wk_at = tonumber(ARGV[b + 1])
      local c = wf_context(KEYS[wk_at], ARGV[b + 2], tonumber(ARGV[b + 3]), now)
      wf_end_safe(c, tonumber(ARGV[b + 4]), ARGV[b + 5], ARGV[b + 6])
    end
  end
end
return stale
