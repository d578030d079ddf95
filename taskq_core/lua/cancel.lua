-- Cancel a queued, scheduled, throttled (delayed by a rate limit) or waiting (for a
-- concurrency slot) task.
-- KEYS: queue(*) + result
-- (the queue's keys, then the task's result key)
-- ARGV: id, result_ttl_ms, record (JSON), abort ('1': a running task is asked to stop, the
-- request kept in the `abort` hash for its worker's next renewal), now_ms (0: the server's
-- clock).
-- Returns 'cancelled', 'aborting' (a running task asked to stop), or the state that
-- prevented it ('running', 'failed', 'dead') or '' when the task is unknown here.
-- A task with a message and no state entry is queued, or running while it is leased.
local msg, state = KEYS[K.msg], KEYS[K.state]
local id = ARGV[1]
local current = redis.call('HGET', state, id)
if current == 'scheduled' or current == 'throttled' then
  redis.call('ZREM', KEYS[K.delayed], id)
elseif current == 'waiting' then
  cap_unpark(0, id)
elseif current then
  return current
elseif redis.call('HEXISTS', msg, id) == 0 then
  return ''
elseif redis.call('ZSCORE', KEYS[K.leased], id) then
  if ARGV[4] ~= '1' then return 'running' end
  if redis.call('HSETNX', KEYS[K.abort], id, now_ms(ARGV[5])) == 1 then
    redis.call('HINCRBY', KEYS[K.stats], 'abort_requested', 1)
  end
  return 'aborting'
else
  redis.call('LREM', KEYS[K.ready], 0, id)
  redis.call('LREM', KEYS[K.suspect], 0, id)  -- or waiting as a suspect
end
local g = redis.call('HGET', KEYS[K.gate], id)
if g then
  local gate = decode_gate(g)
  if gate.u then unique_free(0, id, gate.u) end
  redis.call('HDEL', KEYS[K.gate], id)
end
redis.call('HDEL', msg, id)
redis.call('HDEL', state, id)
redis.call('HDEL', KEYS[K.fence], id)
redis.call('HDEL', KEYS[K.accounted], id)
redis.call('SET', KEYS[QK + 1], ARGV[3], 'PX', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[K.stats], 'cancelled', 1)
-- a workflow's step cancelled by its id: its workflow learns of it (wf_end.lua)
if string.sub(id, 1, 3) == 'wf_' then redis.call('LPUSH', KEYS[K.wfout], id) end
redis.call('PUBLISH', string.sub(KEYS[K.ready], 1, -6) .. 'done', id)
return 'cancelled'
