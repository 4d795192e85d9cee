--[[
  Changes the topology's membership (API.md, "Membership and partition moves"). Every
  change takes a new record version (the topology's control record) and is announced.

  A removal retires the shard's id as a sequencer member (redis-sequencer.ts, "Removed
  members"): the id leaves the members set and enters the removed set, and the topology
  keeps it in `removed` with the counter read here, in a seeded epoch, after every
  allocation the shard ever made (it owns nothing: each of its partitions left through a
  fenced move). Shards tombstone it with that value. A retired id is never added again.

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements, fenced, fences, version }
      KEYS[2] control marker
      KEYS[3] control version counter
      KEYS[4] the sequencer's members set (a removed shard leaves it, so a re-seed does not wait for it)
      KEYS[5] the sequencer's removed set
      KEYS[6] the sequencer's counter
      KEYS[7] the sequencer's marker (present: the counter is seeded)
      ARGV[1] the control marker the caller knows
      ARGV[2] operation: 'add' | 'drain' | 'remove'
      ARGV[3] shard id
      ARGV[4] shard URL ('add')
      ARGV[5] channel to announce a change on

    Output:
      {1, topology JSON}   changed (the caller records it on the shards)
      {0, topology JSON}   already so (drain of a draining shard)
      {-1}                 the control marker differs or is missing
      {-2}                 no topology stored
      {-3}                 'add': the id exists; 'drain', 'remove': no such shard
      {-4, count}          'remove': the shard still owns `count` partitions (a move toward it
                           is not counted: its fence and flip refuse a target that is draining or
                           gone, so such a move rolls back; move-step-7.lua)
      {-5}                 'remove': the sequencer is not seeded (re-seeding after a wipe): try again
      {-6}                 'add': the id belonged to a removed shard (retired)
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local text = redis.call('GET', KEYS[1])
if not text then return {-2} end
local topology = cjson.decode(text)
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
if type(topology.removed) ~= 'table' or next(topology.removed) == nil then topology.removed = nil end
local op, id = ARGV[2], ARGV[3]
local index = nil
for i, s in ipairs(topology.shards) do if s.id == id then index = i end end

if op == 'add' then
  if index ~= nil then return {-3} end
  if topology.removed and topology.removed[id] then return {-6} end
  table.insert(topology.shards, { id = id, url = ARGV[4] })
  topology.epoch = topology.epoch + 1
elseif op == 'drain' then
  if index == nil then return {-3} end
  if topology.shards[index].state == 'draining' then return {0, text} end
  topology.shards[index].state = 'draining'
elseif op == 'remove' then
  if index == nil then return {-3} end
  local owned = 0
  for _, shard in pairs(topology.placements) do if shard == id then owned = owned + 1 end end
  if owned > 0 then return {-4, owned} end
  if not redis.call('GET', KEYS[7]) then return {-5} end
  table.remove(topology.shards, index)
  topology.epoch = topology.epoch + 1
  topology.removed = topology.removed or {}
  topology.removed[id] = redis.call('GET', KEYS[6]) or '0'
  redis.call('SREM', KEYS[4], id)
  redis.call('SADD', KEYS[5], id)
else
  return redis.error_reply('unknown membership operation ' .. op)
end
topology.version = redis.call('INCR', KEYS[3])
text = cjson.encode(topology)
redis.call('SET', KEYS[1], text)
redis.call('PUBLISH', ARGV[5], tostring(topology.epoch))
return {1, text}
