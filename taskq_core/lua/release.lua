#!lua flags=allow-oom
-- allow-oom: a hand-back moves a lease to its queue; refused at maxmemory, the task would
-- wait for its lease to lapse.
-- Hand leased tasks back, with fencing.
-- KEYS: queue(*)
-- ARGV: kind, why, now_ms (0: the server's clock), max_deliveries, then pairs id, fence.
-- kind '': a graceful hand-back (SIGTERM, Worker.close(), leased but not started): to the
-- front of the queue at once, not counted towards poison detection (not the task's fault).
-- kind 'WorkerCrashed' / 'InternalError': the delivery ended without an outcome because its
-- process died or an internal error happened around it: counted by the poison rule
-- (_lib.lua's no_outcome) with `why` as the reason; the task becomes a suspect or, at
-- max_deliveries, is dead-lettered.
-- Returns how many were handed back (dead-lettered ones included).
local ready, leased, fence = KEYS[K.ready], KEYS[K.leased], KEYS[K.fence]
local accounted, wake = KEYS[K.accounted], KEYS[K.wake]
local kind, why, now, maxd = ARGV[1], ARGV[2], now_ms(ARGV[3]), tonumber(ARGV[4])
local released = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local entry = redis.call('HGET', fence, id)
  if fence_of(entry) == ARGV[i + 1] and redis.call('ZREM', leased, id) == 1 then
    -- flow control: the lease's concurrency slots go to the next task waiting for them
    local g = redis.call('HGET', KEYS[K.gate], id)
    if g then gate_end(0, id, decode_gate(g)) end
    if kind == '' then
      keep_fence(fence, id, entry)
      redis.call('RPUSH', ready, id)
      redis.call('HINCRBY', accounted, id, 1)
    else
      no_outcome(0, id, entry, maxd, now, kind, why)
    end
    released = released + 1
  end
end
if released > 0 then
  local counter = kind == '' and 'released' or 'released_counted'
  redis.call('HINCRBY', KEYS[K.stats], counter, released)
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
end
return released
