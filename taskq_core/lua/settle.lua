#!lua flags=allow-oom
-- allow-oom: an outcome removes its task, freeing memory; refused at maxmemory, it would
-- leave the task to run again once its lease lapsed.
-- Record the outcomes of leased tasks of one queue, atomically, with fencing.
-- KEYS[1..QK]: the queue's keys; KEYS[QK + 1..]: the result key of each outcome.
-- ARGV: now_ms (0: the server's clock), result_ttl_ms, n, nstats, then per outcome 6 values:
--   id, fence, kind (ok | retry | failed | dead), task name, record (JSON),
--   extra (retry only: 'delay_ms|new message': due at now + delay, by the same clock as leases)
-- then nstats pairs: stats field, increment (aggregated by the worker for the batch).
-- Final outcomes are announced on the channel <prefix>:{queue}:done (space-separated ids).
-- Returns the 1-based indexes of outcomes refused as stale (their lease was lost).
-- A success costs a SET (its result); the rest is one command per batch. A first
-- delivery's fence is 1 with no entry (see fetch.lua): an outcome other than success
-- writes it, so the next delivery counts on from it.
local ready, delayed, leased, msg, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local fence, unack, dead, err, stats, wake = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local nstats = tonumber(ARGV[4])
local stale, done, gone, counted, counts = {}, {}, {}, {}, {}
local woke = false
local stale_acks = 0
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[5 + i * 6] end
-- fences and leases of the whole batch in two commands
local fences = each('HMGET', fence, ids)
local leases = each('ZMSCORE', leased, ids)
local ended = {}  -- the leases this batch ends (an id listed twice is settled once)
local ending = {}
for i = 0, n - 1 do
  local b = 5 + i * 6
  local id, f, kind, name = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local record, extra = ARGV[b + 4], ARGV[b + 5]
  -- the fence must be this delivery's and the lease still held
  local cur = fences[i + 1]
  if fence_of(cur) ~= f or not leases[i + 1] or ended[id] then
    stale[#stale + 1] = i + 1
    stale_acks = stale_acks + 1
  else
    ended[id] = true
    ending[#ending + 1] = id
    -- counted here, not by the worker, so a refused (stale) outcome is never counted
    counts[kind] = (counts[kind] or 0) + 1
    local per_task = kind .. '|' .. name
    counts[per_task] = (counts[per_task] or 0) + 1
    if kind == 'ok' then
      redis.call('SET', KEYS[QK + 1 + i], record, 'PX', ttl)
      gone[#gone + 1] = id
      -- only a task delivered before has fence and unack entries to delete
      if cur then counted[#counted + 1] = id end
      done[#done + 1] = id
    else
      keep_fence(fence, id, cur)
      -- this delivery had an outcome: it does not count towards poison detection
      redis.call('HINCRBY', unack, id, 1)
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
slices('HDEL', fence, counted, 1000)
slices('HDEL', unack, counted, 1000)
if #done > 0 then
  redis.call('PUBLISH', string.sub(KEYS[1], 1, -6) .. 'done', table.concat(done, ' '))
end
if stale_acks > 0 then counts['stale_acks'] = stale_acks end
for field, value in pairs(counts) do
  redis.call('HINCRBY', stats, field, value)
end
local s = 5 + n * 6
for j = 0, nstats - 1 do
  redis.call('HINCRBY', stats, ARGV[s + j * 2], ARGV[s + j * 2 + 1])
end
if woke and redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
end
return stale
