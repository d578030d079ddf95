#!lua flags=allow-oom
-- allow-oom: a renewal only moves lease deadlines; refused at maxmemory, running tasks
-- would lose their leases and run twice.
-- Extend the leases a worker still holds, with fencing.
-- KEYS: queue(*)
-- ARGV: now_ms (0: the server's clock), lease_ms, then pairs id, fence.
-- Returns the ids whose lease was lost (re-leased to another worker, or settled).
local leased, fence = KEYS[K.leased], KEYS[K.fence]
local deadline = now_ms(ARGV[1]) + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if fence_of(redis.call('HGET', fence, id)) == ARGV[i + 1] and redis.call('ZSCORE', leased, id) then
    redis.call('ZADD', leased, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
