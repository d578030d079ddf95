-- Store a workflow's record and release the steps that wait for nothing, atomically.
-- KEYS: workflow + queue(*) x nqueues
-- (the workflow's record, then every key of each of its queues, in the record's order)
-- ARGV: now_ms (0: the server's clock), workflow id, nfields, then nfields field/value
-- pairs (taskq_core/workflow/plan.py), then the indexes of the steps to release.
-- Returns 1, or 0 when a workflow of this id exists already (a re-sent start adds nothing).
local wk = KEYS[1]
if redis.call('EXISTS', wk) == 1 then return 0 end
local now = now_ms(ARGV[1])
local nfields = tonumber(ARGV[3])
local pairs_ = {}
for i = 4, 3 + nfields * 2 do pairs_[#pairs_ + 1] = ARGV[i] end
slices('HSET', wk, pairs_, 2000)
local c = wf_context(wk, ARGV[2], 1, now)
redis.call('HINCRBY', KEYS[c.qb + K.stats], 'wf_started', 1)
for i = 4 + nfields * 2, #ARGV do
  wf_release(c, tonumber(ARGV[i]))
end
-- a workflow of steps that all failed at release (their input too large) ends here
wf_check_done(c)
return 1
