#!lua flags=allow-oom
-- allow-oom: a renewal only moves lease deadlines; refused at maxmemory, running tasks
-- would lose their leases and run twice.
-- Extend the leases a worker still holds, with fencing; store the progress its running
-- tasks reported since the last renewal; tell it which of them someone asked to abort.
-- KEYS: queue(*)
-- ARGV: now_ms (0: the server's clock), lease_ms, nprogress, then nprogress pairs id,
-- progress (JSON), then pairs id, fence.
-- Returns {ids whose lease was lost (re-leased to another worker, or settled), ids of held
-- leases with an abort request}. Progress costs nothing while none is reported, abort
-- requests one EXISTS while none is pending.
local leased, fence = KEYS[K.leased], KEYS[K.fence]
local deadline = now_ms(ARGV[1]) + tonumber(ARGV[2])
local nprogress = tonumber(ARGV[3])
local reported = {}
for i = 4, 3 + nprogress * 2, 2 do reported[ARGV[i]] = ARGV[i + 1] end
local lost, held = {}, {}
local progress = {}
for i = 4 + nprogress * 2, #ARGV, 2 do
  local id = ARGV[i]
  if fence_of(redis.call('HGET', fence, id)) == ARGV[i + 1] and redis.call('ZSCORE', leased, id) then
    redis.call('ZADD', leased, 'XX', deadline, id)
    held[#held + 1] = id
    if reported[id] then
      progress[#progress + 1] = id
      progress[#progress + 1] = reported[id]
    end
  else
    lost[#lost + 1] = id
  end
end
-- only a lease still held writes progress: a task that lost its lease reports nothing
slices('HSET', KEYS[K.progress], progress, 2000)
local aborting = {}
if #held > 0 and redis.call('EXISTS', KEYS[K.abort]) == 1 then
  local asked = each('HMGET', KEYS[K.abort], held)
  for i, id in ipairs(held) do
    if asked[i] then aborting[#aborting + 1] = id end
  end
end
return {lost, aborting}
