--[[
  Records where partitions live, the first time they appear: placements already
  recorded are kept (a partition never moves by itself). A change takes a new record
  version (the topology's control record, control-keys.ts).

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements, version }
      KEYS[2] control marker
      KEYS[3] control version counter
      ARGV[1] the control marker the caller knows
      ARGV[2] the epoch the caller computed the placements at
      ARGV[3] JSON object partition -> shard id

    Output:
      {1, topology JSON}   recorded: the caller records the topology on the shards
      {0, topology JSON}   already recorded; the stored topology
      {-1}                 the control marker differs or is missing
      {-2}                 no topology stored
      {-3, topology JSON}  the epoch changed: recompute with the topology returned
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local text = redis.call('GET', KEYS[1])
if not text then return {-2} end
local topology = cjson.decode(text)
if tostring(topology.epoch) ~= ARGV[2] then return {-3, text} end
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
local changed = false
for partition, shard in pairs(cjson.decode(ARGV[3])) do
  if topology.placements[partition] == nil then
    topology.placements[partition] = shard
    changed = true
  end
end
if not changed then return {0, text} end
topology.version = redis.call('INCR', KEYS[3])
text = cjson.encode(topology)
redis.call('SET', KEYS[1], text)
return {1, text}
