-- Delete dead-lettered tasks for good. KEYS[1..QK]: the queue's keys. ARGV: ids.
-- Returns how many were deleted.
local msg, state, fence, unack, dead, err = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', dead, id) == 1 then
    redis.call('HDEL', msg, id)
    redis.call('HDEL', state, id)
    redis.call('HDEL', fence, id)
    redis.call('HDEL', unack, id)
    redis.call('HDEL', err, id)
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[10], 'dead_purged', n) end
return n
