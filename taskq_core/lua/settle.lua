-- Record the outcomes of leased tasks of one queue, atomically, with fencing.
-- KEYS[1..11]: the queue's keys; KEYS[12..]: the result key of each outcome.
-- ARGV: now_ms, result_ttl_ms, n, nstats, then per outcome 6 values:
--   id, fence, kind (ok | retry | failed | dead), task name, record (JSON),
--   extra (retry only: 'due_ms|new message')
-- Final outcomes are announced on the channel <prefix>:{queue}:done (space-separated ids).
-- then nstats pairs: stats field, increment (aggregated by the worker for the batch).
-- Returns the 1-based indexes of outcomes refused as stale (their lease was lost).
local ready, delayed, leased, msg, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local fence, unack, dead, err, stats, wake = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local nstats = tonumber(ARGV[4])
local stale = {}
local woke = false
local done = {}
for i = 0, n - 1 do
  local b = 5 + i * 6
  local id, f, kind, name = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local record, extra = ARGV[b + 4], ARGV[b + 5]
  if redis.call('HGET', fence, id) ~= f or not redis.call('ZSCORE', leased, id) then
    stale[#stale + 1] = i + 1
    redis.call('HINCRBY', stats, 'stale_acks', 1)
  else
    redis.call('ZREM', leased, id)
    redis.call('HDEL', unack, id)
    -- counted here, not by the worker, so a refused (stale) outcome is never counted
    redis.call('HINCRBY', stats, kind, 1)
    redis.call('HINCRBY', stats, kind .. '|' .. name, 1)
    if kind == 'ok' then
      redis.call('SET', KEYS[12 + i], record, 'PX', ttl)
      redis.call('HDEL', msg, id)
      redis.call('HDEL', state, id)
      redis.call('HDEL', fence, id)
      done[#done + 1] = id
    elseif kind == 'retry' then
      local sep = string.find(extra, '|', 1, true)
      local due = tonumber(string.sub(extra, 1, sep - 1))
      redis.call('HSET', msg, id, string.sub(extra, sep + 1))
      if due > now then
        redis.call('ZADD', delayed, due, id)
        redis.call('HSET', state, id, 'scheduled')
      else
        redis.call('LPUSH', ready, id)
        redis.call('HSET', state, id, 'queued')
      end
      woke = true
    else
      -- failed (retries exhausted) or dead (could not run): kept in the dead-letter queue
      redis.call('ZADD', dead, now, id)
      redis.call('HSET', state, id, kind)
      redis.call('HSET', err, id, record)
      redis.call('SET', KEYS[12 + i], record, 'PX', ttl)
      done[#done + 1] = id
    end
  end
end
if #done > 0 then
  redis.call('PUBLISH', string.sub(KEYS[1], 1, -6) .. 'done', table.concat(done, ' '))
end
local s = 5 + n * 6
for j = 0, nstats - 1 do
  redis.call('HINCRBY', stats, ARGV[s + j * 2], ARGV[s + j * 2 + 1])
end
if woke and redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
end
return stale
