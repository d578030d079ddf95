-- Cancel a running workflow: steps not started are removed from their queues or never
-- released; running ones are asked to stop (cooperatively: docs/workflows.md).
-- KEYS: workflow + queue(*) x nqueues
-- (the workflow's record, then every key of each of its queues, in the record's order)
-- ARGV: now_ms (0: the server's clock), workflow id.
-- Returns 'cancelled' when it cancelled it now; else 'was:' and the status that prevented
-- it (succeeded, failed, cancelled), or '' for an unknown workflow.
local wk = KEYS[1]
local status = redis.call('HGET', wk, 'status')
if not status then return '' end
if status ~= 'running' then return 'was:' .. status end
local c = wf_context(wk, ARGV[2], 1, now_ms(ARGV[1]))
redis.call('HSET', wk, 'status', 'cancelled')
wf_cancel_all(c)
wf_check_done(c)
return 'cancelled'
