-- Run a failed or cancelled workflow again from the steps that did not succeed: each runs
-- under a new task id (its generation), the steps that succeeded are kept.
-- KEYS: workflow + queue(*) x nqueues
-- (the workflow's record, then every key of each of its queues, in the record's order)
-- ARGV: now_ms (0: the server's clock), workflow id, nsteps, then per step 3 values: its
-- index, the generation it had, its new message.
-- Returns the number of steps to run again, or -1 when the workflow changed since it was
-- read (another retry, or it is running), or -2 when it is unknown.
local wk = KEYS[1]
local status = redis.call('HGET', wk, 'status')
if not status then return -2 end
if status ~= 'failed' and status ~= 'cancelled' then return -1 end
local c = wf_context(wk, ARGV[2], 1, now_ms(ARGV[1]))
local nsteps = tonumber(ARGV[3])
local eb = tonumber(redis.call('HGET', wk, 'errback') or '-1') or -1
local again = {}
for j = 0, nsteps - 1 do
  local i, gen, body = tonumber(ARGV[4 + j * 3]), tonumber(ARGV[5 + j * 3]), ARGV[6 + j * 3]
  local s = redis.call('HGET', wk, 's:' .. i)
  local had = tonumber(redis.call('HGET', wk, 'g:' .. i) or '0') or 0
  if had ~= gen or (s ~= 'failed' and s ~= 'cancelled' and not (i == eb and s ~= 'pending')) then
    return -1
  end
  again[#again + 1] = i
  -- an error callback still queued was counted as left: it is not any more
  if i == eb and s == 'queued' then redis.call('HINCRBY', wk, 'left', -1) end
  redis.call('HSET', wk, 's:' .. i, 'pending', 'g:' .. i, gen + 1, 'm:' .. i, body)
  redis.call('HDEL', wk, 'e:' .. i, 'r:' .. i, 't0:' .. i, 't1:' .. i)
end
redis.call('HDEL', wk, 'failed_step', 'failing', 'finished')
redis.call('HSET', wk, 'status', 'running')
redis.call('PERSIST', wk)
local counted = 0
local ready = {}
for _, i in ipairs(again) do
  if i ~= eb then
    counted = counted + 1
    local d = wf_def(c, i)
    local waiting = 0
    if d and type(d.deps) == 'table' then
      for _, x in ipairs(d.deps) do
        local s = redis.call('HGET', wk, 's:' .. x)
        if s ~= 'succeeded' and s ~= 'skipped' then waiting = waiting + 1 end
      end
    end
    redis.call('HSET', wk, 'w:' .. i, waiting)
    if waiting == 0 then ready[#ready + 1] = i end
  end
end
redis.call('HINCRBY', wk, 'left', counted)
redis.call('HINCRBY', KEYS[c.qb + K.stats], 'wf_retried', 1)
for _, i in ipairs(ready) do wf_release(c, i) end
wf_check_done(c)
return counted
