-- Shared by every script (prepended when the scripts are loaded).
-- unpack() is bounded by Lua's C stack (8,000 values): long lists go to Redis in slices.
local function slices(cmd, key, list, step)
  local reply = 0
  for i = 1, #list, step do
    reply = redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
  return reply
end

-- the replies of a command that answers field by field (HMGET, ZMSCORE), for any number of
-- fields; a missing one is false
local function each(cmd, key, fields)
  local values = {}
  for i = 1, #fields, 1000 do
    local part = redis.call(cmd, key, unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do values[#values + 1] = part[j] end
  end
  return values
end

-- Fences (docs/architecture.md, "Fences"): a task on its first delivery has no entry in the
-- fence hash, its fence is 1 while it is leased. `entry` is what HGET/HMGET gave for it.
local function fence_of(entry)
  return entry or '1'
end

-- A delivery ended without settling its task for good (retry, failure, hand-back, lapse):
-- a first delivery's fence is written, so the next delivery's HINCRBY counts on from it.
local function keep_fence(fence, id, entry)
  if not entry then redis.call('HSET', fence, id, 1) end
end

-- "Now" in ms (docs/architecture.md, "Time"): the caller's time when it passed one (a test's
-- ManualClock), else the server's own clock. One clock for every lease and due time, so a
-- host whose clock runs ahead cannot expire the leases of the others.
local function now_ms(arg)
  local t = tonumber(arg)
  if t and t > 0 then return t end
  local s = redis.call('TIME')
  return tonumber(s[1]) * 1000 + math.floor(tonumber(s[2]) / 1000)
end
