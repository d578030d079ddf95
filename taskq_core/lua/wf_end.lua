-- A workflow step whose task ended outside a settle that carried its step (dead-lettered at
-- fetch or hand-back as poison, its message unreadable, cancelled by its task id): taken
-- from its queue's `wfout` list, it advances its workflow here, once.
-- KEYS: workflow + queue(*) x nqueues
-- (the workflow's record, then every key of each of its queues, in the record's order)
-- ARGV: now_ms (0: the server's clock), workflow id, the index of the task's queue among
-- the workflow's, task id, step index.
-- Returns 1 when it advanced the workflow, else 0 (drained already, or an earlier run's task).
local wk = KEYS[1]
local c = wf_context(wk, ARGV[2], 1, now_ms(ARGV[1]))
local k = c.qb + tonumber(ARGV[3]) * QK
local id, i = ARGV[4], tonumber(ARGV[5])
if redis.call('LREM', KEYS[k + K.wfout], 0, id) == 0 then return 0 end
if wf_tid(c.w, i, tonumber(redis.call('HGET', wk, 'g:' .. i) or '0') or 0) ~= id then return 0 end
local st = redis.call('HGET', KEYS[k + K.state], id)
local status, payload = 'cancelled', '{"type":"Cancelled","message":"its task was cancelled"}'
if st == 'dead' or st == 'failed' then
  status = 'failed'
  local rec = wf_json(redis.call('HGET', KEYS[k + K.error], id))
  local e = rec and type(rec.error) == 'table' and rec.error or {}
  payload = cjson.encode({type = tostring(e.type or 'Dead'), message = tostring(e.message or '')})
end
wf_end_safe(c, i, status, payload)
return 1
