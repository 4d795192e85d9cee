--[[
  Restores the control-plane keys of a Redis that lost them, from the merge of the
  shards' control records (rebuilder.ts), all at once: nobody sees half a rebuild.
  Runs only for the holder of the rebuild lock, and only while no marker exists.

    Input:
      KEYS[1] control marker
      KEYS[2] control version counter
      KEYS[3] rebuild lock
      ARGV[1] the lock token   ARGV[2] the new marker   ARGV[3] highest record version
      ARGV[4] channel to announce the rebuild on
      ARGV[5..n] JSON writes: { "hash": key, "fields": { … } } or { "string": key, "text": … }

    Output:
      {0}   rebuilt; the lock is released
      {-1}  a marker exists (someone rebuilt already) or the lock is not ours; nothing written
]]
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('GET', KEYS[3]) ~= ARGV[1] then return {-1} end
for i = 5, #ARGV do
  local w = cjson.decode(ARGV[i])
  if w.hash then
    for field, value in pairs(w.fields) do redis.call('HSET', w.hash, field, value) end
  else
    redis.call('SET', w.string, w.text)
  end
end
-- The counter never goes back: a version handed out before the wipe is never handed out again.
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) > current then redis.call('SET', KEYS[2], ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[4], 'rebuilt')
return {0}
