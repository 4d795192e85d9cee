--[[
  Records where partitions live, the first time they appear: placements already
  recorded are kept (a partition never moves by itself).

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements }
      ARGV[1] the epoch the caller computed the placements at
      ARGV[2] JSON object partition -> shard id

    Output:
      {0, topology JSON}   recorded (or already there); the stored topology
      {-1, topology JSON}  the epoch changed: recompute with the topology returned
      {-2}                 no topology stored
]]
local text = redis.call('GET', KEYS[1])
if not text then return {-2} end
local topology = cjson.decode(text)
if tostring(topology.epoch) ~= ARGV[1] then return {-1, text} end
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
local changed = false
for partition, shard in pairs(cjson.decode(ARGV[2])) do
  if topology.placements[partition] == nil then
    topology.placements[partition] = shard
    changed = true
  end
end
if changed then
  text = cjson.encode(topology)
  redis.call('SET', KEYS[1], text)
end
return {0, text}
