-- Cancel a queued or scheduled task. KEYS[1..QK]: the queue's keys; KEYS[QK + 1]: its result key.
-- ARGV: id, result_ttl_ms, record (JSON). Returns 'cancelled', or the state that prevented it
-- ('running', 'failed', 'dead') or '' when the task is unknown here.
-- A task with a message and no state entry is queued, or running while it is leased.
local ready, delayed, leased, msg, state, fence, unack = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id = ARGV[1]
local s = redis.call('HGET', state, id)
if s == 'scheduled' then
  redis.call('ZREM', delayed, id)
elseif s then
  return s
elseif redis.call('HEXISTS', msg, id) == 0 then
  return ''
elseif redis.call('ZSCORE', leased, id) then
  return 'running'
else
  redis.call('LREM', ready, 0, id)
  redis.call('LREM', KEYS[12], 0, id)  -- or waiting as a suspect
end
redis.call('HDEL', msg, id)
redis.call('HDEL', state, id)
redis.call('HDEL', fence, id)
redis.call('HDEL', unack, id)
redis.call('SET', KEYS[QK + 1], ARGV[3], 'PX', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[10], 'cancelled', 1)
redis.call('PUBLISH', string.sub(KEYS[1], 1, -6) .. 'done', id)
return 'cancelled'
