-- Hand leased tasks back to the front of their queue at once (graceful shutdown).
-- The delivery does not count towards poison detection: it was not the task's fault.
-- KEYS[1..11]: the queue's keys. ARGV: pairs id, fence. Returns how many were handed back.
local ready, leased, fence, unack, wake = KEYS[1], KEYS[3], KEYS[6], KEYS[7], KEYS[11]
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local entry = redis.call('HGET', fence, id)
  if fence_of(entry) == ARGV[i + 1] and redis.call('ZREM', leased, id) == 1 then
    keep_fence(fence, id, entry)
    redis.call('RPUSH', ready, id)
    redis.call('HINCRBY', unack, id, 1)
    n = n + 1
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[10], 'released', n)
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
end
return n
