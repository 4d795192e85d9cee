--[[
  Makes sure the topology lists the given shards: creates it (epoch 1) when absent,
  adds shards it lacks with a new epoch, and updates changed URLs (same epoch).
  Never removes a shard, never adds back a removed one (`removed`: its id is retired,
  shard-membership-7.lua) and never moves a placement. Every change takes a new record
  version (the topology's control record, control-keys.ts).

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements, version }
      KEYS[2] control marker
      KEYS[3] control version counter
      ARGV[1] the control marker the caller knows
      ARGV[2] JSON array of { id, url }
      ARGV[3] channel to announce a change on

    Output:
      {1, topology JSON}  changed (the caller records it on the shards)
      {0, topology JSON}  already so
      {-1}                the control marker differs or is missing: Redis was wiped or rebuilt
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local text = redis.call('GET', KEYS[1])
local wanted = cjson.decode(ARGV[2])
local topology
if text then topology = cjson.decode(text) else topology = { epoch = 0, shards = {}, placements = {} } end
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
local byId = {}
for i, s in ipairs(topology.shards) do byId[s.id] = i end
local added, changed = false, not text
for _, s in ipairs(wanted) do
  local i = byId[s.id]
  if i == nil and type(topology.removed) == 'table' and topology.removed[s.id] then
    -- retired: a router started with an older shard list
  elseif i == nil then
    table.insert(topology.shards, { id = s.id, url = s.url })
    added = true
  elseif topology.shards[i].url ~= s.url then
    topology.shards[i].url = s.url
    changed = true
  end
end
if added then topology.epoch = topology.epoch + 1 end
if not (added or changed) then return {0, text} end
topology.version = redis.call('INCR', KEYS[3])
text = cjson.encode(topology)
redis.call('SET', KEYS[1], text)
redis.call('PUBLISH', ARGV[3], tostring(topology.epoch))
return {1, text}
