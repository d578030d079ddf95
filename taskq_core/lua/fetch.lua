-- Lease up to `want` tasks from several queues in strict priority order, atomically.
-- Also re-queues tasks whose lease lapsed (dead-lettering those delivered max_deliveries
-- times without an outcome) and promotes delayed tasks that are due.
-- KEYS: 11 keys per queue, queues in priority order.
-- ARGV: now_ms (0: the server's clock), lease_ms, want, max_deliveries, nqueues, poison_error_json_prefix
-- Returns {next_due_ms or -1, now_ms, q1, id1, fence1, message1, q2, ...} (q is the 0-based
-- queue index; now_ms the time used, so a worker sleeps until next_due by the same clock).
-- A first delivery costs no command of its own: its fence is 1, written nowhere (see
-- docs/architecture.md, "fences"); a later one costs one HINCRBY. The rest is one command
-- per batch.
local now = now_ms(ARGV[1])
local lease = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local maxd = tonumber(ARGV[4])
local nq = tonumber(ARGV[5])
local out = {-1, now}
local got = 0
local next_due = -1
for q = 0, nq - 1 do
  local k = q * 11
  local ready, delayed, leased, msg, state = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local fence, unack, dead, err, stats = KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9], KEYS[k + 10]
  -- 1. leases that lapsed: the worker died or froze
  local dead_ids = {}
  local lapsed = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(lapsed) do
    redis.call('ZREM', leased, id)
    redis.call('HINCRBY', stats, 'lease_expired', 1)
    local entry = redis.call('HGET', fence, id)
    keep_fence(fence, id, entry)
    -- deliveries without an outcome: all of them (the fence) but those that had one or were
    -- handed back (unack)
    local u = tonumber(fence_of(entry)) - tonumber(redis.call('HGET', unack, id) or '0')
    if u >= maxd then
      redis.call('ZADD', dead, now, id)
      redis.call('HSET', state, id, 'dead')
      redis.call('HINCRBY', unack, id, u)
      redis.call('HSET', err, id, cjson.encode({
        status = 'dead',
        error = {
          type = 'PoisonTask',
          message = 'delivered ' .. u .. ' times without finishing; its worker died or froze each time',
          traceback = '',
        },
        attempts = u,
        finished_at = now,
      }))
      dead_ids[#dead_ids + 1] = id
      redis.call('HINCRBY', stats, 'dead', 1)
    else
      redis.call('RPUSH', ready, id)
    end
  end
  if #dead_ids > 0 then redis.call('PUBLISH', string.sub(KEYS[k + 1], 1, -6) .. 'done', table.concat(dead_ids, ' ')) end
  -- 2. delayed tasks that are due (at most 1000 a call: unpack() is bounded)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
    redis.call('HDEL', state, unpack(due))
    for _, id in ipairs(due) do
      redis.call('LPUSH', ready, id)
    end
  end
  -- 3. lease what is ready, highest priority first
  if got < want then
    local ids = redis.call('RPOP', ready, want - got)
    if ids then
      local bodies = each('HMGET', msg, ids)
      local fences = each('HMGET', fence, ids)
      local deadline = now + lease
      local held = {}
      -- ids delivered in this batch: an id listed twice (never in normal operation) still
      -- gets a new fence for each delivery
      local given = {}
      for i, id in ipairs(ids) do
        local body = bodies[i]
        if body then
          local f = 1
          if fences[i] or given[id] then
            if given[id] == 1 then keep_fence(fence, id, fences[i]) end
            f = redis.call('HINCRBY', fence, id, 1)
          end
          given[id] = f
          held[#held + 1] = deadline
          held[#held + 1] = id
          out[#out + 1] = q
          out[#out + 1] = id
          out[#out + 1] = f
          out[#out + 1] = body
          got = got + 1
        else
          -- an id without a message (a cancel raced a hand-back): nothing to run
          redis.call('HINCRBY', stats, 'orphans', 1)
        end
      end
      slices('ZADD', leased, held, 2000)
    end
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] then
    local d = tonumber(first[2])
    if next_due < 0 or d < next_due then next_due = d end
  end
end
-- pass the baton: if work remains, make sure one sleeper wakes up for it
if got >= want then
  for q = 0, nq - 1 do
    if redis.call('LLEN', KEYS[q * 11 + 1]) > 0 then
      local wake = KEYS[q * 11 + 11]
      if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
      break
    end
  end
end
out[1] = next_due
return out
