-- Workflows (taskq_core/workflow/plan.py lists the fields of a workflow's record, the hash
-- `wk`). Prepended, after _lib.lua, to the scripts that advance a workflow: settle.lua (a
-- step's task settled: the same atomic step releases the steps after it), wf_start,
-- wf_cancel, wf_retry and wf_end. Every key is in KEYS: the record, then every key of each
-- of the workflow's queues (QK per queue, after the first c.qb keys, in the record's `queues`
-- order). `c` holds the call's context: wk, w (the workflow id), qb, now (ms).
-- The record is ours; a field that does not decode (written by something else) fails its
-- step rather than the script, so no workflow blocks a queue's settles.

local function wf_tid(w, i, g)
  if g == 0 then return w .. '.' .. i end
  return w .. '.' .. i .. '.' .. g
end

local function wf_json(raw)
  if not raw then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return v end
  return nil
end

local function wf_given(v) return v ~= nil and v ~= cjson.null end

local function wf_def(c, i) return wf_json(redis.call('HGET', c.wk, 'd:' .. i)) end

-- the step indexes a spec reads (an index, or a list of specs)
local function wf_flat(spec, out)
  if type(spec) == 'number' then
    out[#out + 1] = spec
  elseif type(spec) == 'table' then
    for _, s in ipairs(spec) do wf_flat(s, out) end
  end
  return out
end

local function wf_render(spec, vals)
  if type(spec) == 'number' then return vals[spec] or 'null' end
  local parts = {}
  for j, s in ipairs(spec) do parts[j] = wf_render(s, vals) end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- the values of steps `idx` as a step after them receives them (JSON): a result; null for a
-- skipped step; for a failed or cancelled one (only a tolerant step runs after those),
-- {"taskq_failed": its error}
local function wf_values(c, idx)
  local fields = {}
  for _, i in ipairs(idx) do
    fields[#fields + 1] = 's:' .. i
    fields[#fields + 1] = 'r:' .. i
    fields[#fields + 1] = 'e:' .. i
  end
  local got = each('HMGET', c.wk, fields)
  local vals = {}
  for j, i in ipairs(idx) do
    local s, r, e = got[j * 3 - 2], got[j * 3 - 1], got[j * 3]
    if s == 'succeeded' then
      vals[i] = r or 'null'
    elseif s == 'failed' or s == 'cancelled' then
      vals[i] = '{"taskq_failed":' .. (e or
        '{"type":"Cancelled","message":"not run: a step before it failed"}') .. '}'
    else
      vals[i] = 'null'
    end
  end
  return vals
end

local wf_end  -- below: releasing a step can fail it (its input over the limit)

-- step i's task goes into its queue, its message completed with its input
local function wf_release(c, i)
  local d = wf_def(c, i)
  local f = redis.call('HMGET', c.wk, 'm:' .. i, 'g:' .. i, 'gt:' .. i)
  redis.call('HSET', c.wk, 's:' .. i, 'queued', 't0:' .. i, c.now)
  if not d or not f[1] or type(d.q) ~= 'number' or not KEYS[c.qb + d.q * QK + K.ready] then
    return wf_end(c, i, 'failed', '{"type":"BadWorkflow","message":"step ' .. i ..
      ' is not stored as taskq writes it"}')
  end
  local extra = ',"wf_in":{"at":' .. c.now
  if d.kind == 'errback' then
    extra = extra .. ',"input":' .. (c.failure or 'null')
  else
    local idx = {}
    if wf_given(d.feed) then wf_flat(d.feed, idx) end
    if wf_given(d.cond) then wf_flat(d.cond, idx) end
    if #idx > 0 or wf_given(d.feed) then
      local vals = wf_values(c, idx)
      if wf_given(d.feed) then
        local input = wf_render(d.feed, vals)
        if #input > c.limit then
          return wf_end(c, i, 'failed', cjson.encode({
            type = 'PayloadTooLarge',
            message = 'the input of step ' .. i .. ' (' .. tostring(d.name) ..
              '), the results of the steps before it, is ' .. #input ..
              ' bytes, over the payload limit of ' .. c.limit .. ' bytes',
          }))
        end
        extra = extra .. ',"input":' .. input
      end
      if wf_given(d.cond) then extra = extra .. ',"cond":' .. wf_render(d.cond, vals) end
    end
  end
  local id = wf_tid(c.w, i, tonumber(f[2] or '0') or 0)
  local k = c.qb + d.q * QK
  redis.call('HSET', KEYS[k + K.msg], id, string.sub(f[1], 1, -2) .. extra .. '}}')
  if f[3] then redis.call('HSET', KEYS[k + K.gate], id, f[3]) end
  redis.call('LPUSH', KEYS[k + K.ready], id)
  redis.call('HINCRBY', KEYS[k + K.stats], 'enqueued|' .. tostring(d.name), 1)
  if redis.call('LLEN', KEYS[k + K.wake]) == 0 then redis.call('LPUSH', KEYS[k + K.wake], '1') end
end

local function wf_dep_done(c, j)
  local waiting = redis.call('HINCRBY', c.wk, 'w:' .. j, -1)
  if waiting <= 0 and redis.call('HGET', c.wk, 's:' .. j) == 'pending' then wf_release(c, j) end
end

-- tasks of queue `k` that are queued or running, for steps cancelled: a running one is asked
-- to stop (its worker learns of it at its next lease renewal), the others are removed
local function wf_unqueue(k, ids, now)
  local scores = each('ZMSCORE', KEYS[k + K.leased], ids)
  local gone = {}
  for j, id in ipairs(ids) do
    if scores[j] then
      if redis.call('HSETNX', KEYS[k + K.abort], id, now) == 1 then
        redis.call('HINCRBY', KEYS[k + K.stats], 'abort_requested', 1)
      end
    else
      local st = redis.call('HGET', KEYS[k + K.state], id)
      if st == 'scheduled' or st == 'throttled' then
        redis.call('ZREM', KEYS[k + K.delayed], id)
      elseif st == 'waiting' then
        cap_unpark(k, id)
      end
      if redis.call('HEXISTS', KEYS[k + K.msg], id) == 1 then gone[#gone + 1] = id end
    end
  end
  if #gone == 0 then return end
  -- off the ready and suspect lists: one LREM each, or one pass over a list for many
  for _, key in ipairs({KEYS[k + K.ready], KEYS[k + K.suspect]}) do
    if #gone <= 16 then
      for _, id in ipairs(gone) do redis.call('LREM', key, 0, id) end
    else
      local drop = {}
      for _, id in ipairs(gone) do drop[id] = true end
      local all = redis.call('LRANGE', key, 0, -1)
      local keep = {}
      for _, id in ipairs(all) do
        if not drop[id] then keep[#keep + 1] = id end
      end
      if #keep < #all then
        redis.call('DEL', key)
        slices('RPUSH', key, keep, 1000)
      end
    end
  end
  for _, key in ipairs({KEYS[k + K.msg], KEYS[k + K.state], KEYS[k + K.gate],
      KEYS[k + K.fence], KEYS[k + K.accounted]}) do
    slices('HDEL', key, gone, 1000)
  end
  redis.call('HINCRBY', KEYS[k + K.stats], 'cancelled', #gone)
end

-- every step not final yet is cancelled (the error callback is not a step of this count)
local function wf_cancel_all(c)
  local n = tonumber(redis.call('HGET', c.wk, 'n') or '0') or 0
  local fields = {}
  for i = 0, n - 1 do fields[#fields + 1] = 's:' .. i end
  local states = each('HMGET', c.wk, fields)
  local set, byq = {}, {}
  local cancelled = 0
  for i = 0, n - 1 do
    local s = states[i + 1]
    if s == 'pending' or s == 'queued' then
      set[#set + 1] = 's:' .. i
      set[#set + 1] = 'cancelled'
      set[#set + 1] = 't1:' .. i
      set[#set + 1] = c.now
      cancelled = cancelled + 1
      if s == 'queued' then
        local d = wf_def(c, i)
        if d and type(d.q) == 'number' and KEYS[c.qb + d.q * QK + K.ready] then
          local ids = byq[d.q] or {}
          byq[d.q] = ids
          ids[#ids + 1] = wf_tid(c.w, i, tonumber(redis.call('HGET', c.wk, 'g:' .. i) or '0') or 0)
        end
      end
    end
  end
  slices('HSET', c.wk, set, 4000)
  if cancelled > 0 then redis.call('HINCRBY', c.wk, 'left', 0 - cancelled) end
  for q, ids in pairs(byq) do wf_unqueue(c.qb + q * QK, ids, c.now) end
end

-- the error callback, once: given what failed
local function wf_errback(c, i, err)
  local eb = tonumber(redis.call('HGET', c.wk, 'errback') or '-1') or -1
  if eb < 0 or redis.call('HGET', c.wk, 's:' .. eb) ~= 'pending' then return end
  local d = wf_def(c, i) or {}
  c.failure = '{"workflow":' .. cjson.encode(c.w) .. ',"step":' .. i .. ',"task":' ..
    cjson.encode(tostring(d.name)) .. ',"error":' .. (err or 'null') .. '}'
  redis.call('HINCRBY', c.wk, 'left', 1)
  wf_release(c, eb)
end

-- the steps after a failed one (policy continue), transitively: cancelled, except a tolerant
-- step, which runs given the failure
local function wf_cut(c, list)
  local stack = {}
  for _, j in ipairs(list) do stack[#stack + 1] = j end
  while #stack > 0 do
    local j = table.remove(stack)
    if redis.call('HGET', c.wk, 's:' .. j) == 'pending' then
      local dj = wf_def(c, j)
      if dj and dj.tol == 1 then
        wf_dep_done(c, j)
      else
        redis.call('HSET', c.wk, 's:' .. j, 'cancelled', 't1:' .. j, c.now)
        redis.call('HINCRBY', c.wk, 'left', -1)
        if dj and type(dj.next) == 'table' then
          for _, x in ipairs(dj.next) do stack[#stack + 1] = x end
        end
      end
    end
  end
end

-- once no step is left: the workflow's final status, its record kept for its TTL, the news
-- published (WorkflowHandle.result waits on it)
local function wf_check_done(c)
  local m = redis.call('HMGET', c.wk, 'left', 'status', 'failing', 'failed_step', 'ttl')
  if (tonumber(m[1] or '0') or 0) > 0 then return end
  if m[2] == 'running' then
    if m[3] then
      redis.call('HSET', c.wk, 'status', 'failed')
      local fi = tonumber(m[4] or '0') or 0
      wf_errback(c, fi, redis.call('HGET', c.wk, 'e:' .. fi))
      if (tonumber(redis.call('HGET', c.wk, 'left') or '0') or 0) > 0 then return end
    else
      redis.call('HSET', c.wk, 'status', 'succeeded')
    end
  end
  if redis.call('HSETNX', c.wk, 'finished', c.now) == 0 then return end
  local status = redis.call('HGET', c.wk, 'status')
  redis.call('PEXPIRE', c.wk, tonumber(m[5] or '') or 86400000)
  redis.call('HINCRBY', KEYS[c.qb + K.stats], 'wf_' .. tostring(status), 1)
  redis.call('PUBLISH', string.sub(c.wk, 1, -9) .. 'done', c.w)
end

-- step i's task reached a final outcome: `status` succeeded | skipped | failed | cancelled,
-- `payload` its result or its error (JSON). Counted once: a step is final once.
wf_end = function(c, i, status, payload)
  if redis.call('HGET', c.wk, 's:' .. i) ~= 'queued' then return end
  local fields = {'s:' .. i, status, 't1:' .. i, c.now}
  if status == 'succeeded' then
    fields[5], fields[6] = 'r:' .. i, payload
  elseif status ~= 'skipped' then
    fields[5], fields[6] = 'e:' .. i, payload
  end
  redis.call('HSET', c.wk, unpack(fields))
  redis.call('HINCRBY', c.wk, 'left', -1)
  local meta = redis.call('HMGET', c.wk, 'status', 'errback', 'policy')
  local d = wf_def(c, i) or {}
  local nexts = type(d.next) == 'table' and d.next or {}
  if status == 'succeeded' or status == 'skipped' then
    if meta[1] == 'running' then
      for _, j in ipairs(nexts) do wf_dep_done(c, j) end
    end
  elseif i ~= tonumber(meta[2] or '-1') and meta[1] == 'running' then
    -- a failure is handled when every step after it is tolerant (a chord's callback with
    -- on_member_failure="pass"); otherwise the policy decides. A failed last step fails
    -- the workflow too.
    local blocked = #nexts == 0
    for _, j in ipairs(nexts) do
      local dj = wf_def(c, j)
      if not (dj and dj.tol == 1) then blocked = true end
    end
    if not blocked then
      for _, j in ipairs(nexts) do wf_dep_done(c, j) end
    else
      redis.call('HSETNX', c.wk, 'failed_step', i)
      if meta[3] == 'continue' then
        redis.call('HSET', c.wk, 'failing', 1)
        wf_cut(c, nexts)
      else
        redis.call('HSET', c.wk, 'status', 'failed')
        wf_cancel_all(c)
        wf_errback(c, i, payload)
      end
    end
  end
  wf_check_done(c)
end

-- a step's end, from settle.lua: a workflow whose record fails an advance (written by
-- something else) is marked failed with the reason, and the settle of its task stands
local function wf_end_safe(c, i, status, payload)
  local ok, err = pcall(wf_end, c, i, status, payload)
  if not ok then
    redis.call('HSET', c.wk, 'status', 'failed', 'broken', tostring(err))
  end
end

local function wf_context(wk, w, qb, now)
  local limit = tonumber(redis.call('HGET', wk, 'limit') or '') or 1048576
  return {wk = wk, w = w, qb = qb, now = now, limit = limit}
end
