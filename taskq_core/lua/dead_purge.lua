-- Delete dead-lettered tasks for good.
-- KEYS: queue(*)
-- ARGV: ids. Returns how many were deleted.
local msg, state, fence = KEYS[K.msg], KEYS[K.state], KEYS[K.fence]
local accounted = KEYS[K.accounted]
local dead, err = KEYS[K.dead], KEYS[K.error]
local purged = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', dead, id) == 1 then
    redis.call('HDEL', msg, id)
    redis.call('HDEL', state, id)
    redis.call('HDEL', fence, id)
    redis.call('HDEL', accounted, id)
    redis.call('HDEL', err, id)
    redis.call('HDEL', KEYS[K.gate], id)
    purged = purged + 1
  end
end
if purged > 0 then redis.call('HINCRBY', KEYS[K.stats], 'dead_purged', purged) end
return purged
