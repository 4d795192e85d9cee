--[[
  Makes sure the topology lists the given shards: creates it (epoch 1) when absent,
  adds shards it lacks with a new epoch, and updates changed URLs (same epoch).
  Never removes a shard and never moves a placement.

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements }
      ARGV[1] JSON array of { id, url }
      ARGV[2] channel to announce a change on

    Output:
      topology JSON as stored afterwards
]]
local text = redis.call('GET', KEYS[1])
local wanted = cjson.decode(ARGV[1])
local topology
if text then topology = cjson.decode(text) else topology = { epoch = 0, shards = {}, placements = {} } end
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
local byId = {}
for i, s in ipairs(topology.shards) do byId[s.id] = i end
local added, changed = false, not text
for _, s in ipairs(wanted) do
  local i = byId[s.id]
  if i == nil then
    table.insert(topology.shards, { id = s.id, url = s.url })
    added = true
  elseif topology.shards[i].url ~= s.url then
    topology.shards[i].url = s.url
    changed = true
  end
end
if added then topology.epoch = topology.epoch + 1 end
if added or changed then
  text = cjson.encode(topology)
  redis.call('SET', KEYS[1], text)
  redis.call('PUBLISH', ARGV[2], tostring(topology.epoch))
end
return text
