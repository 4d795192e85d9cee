--[[
  Records where partitions live, the first time they appear: placements already
  recorded are kept (a partition moves only by a partition move). New partitions go
  where they keep the group's partitions per shard within ±1 of even: every eligible
  shard takes floor(N / S) of the N partitions given, and the N mod S shards holding
  the fewest partitions in the whole topology take one more. Each new partition goes
  to the first shard of its rendezvous preference with room left. Shards marked
  `draining` take none. A change takes a new record version (the topology's control
  record, control-keys.ts). `balancedPlacements` in @skein/ring is the same rule in
  TypeScript (the embedded control store uses it; a spec checks they agree).

    Input:
      KEYS[1] topology   JSON { epoch, shards, placements, version }
      KEYS[2] control marker
      KEYS[3] control version counter
      ARGV[1] the control marker the caller knows
      ARGV[2] the epoch the caller computed the preferences at
      ARGV[3] JSON array, every partition of the group (a tenant), placed or not:
              [{ "p": partition, "prefs": [shard id, ...] }] with prefs the rendezvous
              order over the topology's shards

    Output:
      {1, topology JSON}   recorded: the caller records the topology on the shards
      {0, topology JSON}   already recorded; the stored topology
      {-1}                 the control marker differs or is missing
      {-2}                 no topology stored
      {-3, topology JSON}  the epoch changed: recompute with the topology returned
      {-4, topology JSON}  no shard may take partitions (all draining)
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local text = redis.call('GET', KEYS[1])
if not text then return {-2} end
local topology = cjson.decode(text)
if tostring(topology.epoch) ~= ARGV[2] then return {-3, text} end
if type(topology.placements) ~= 'table' or next(topology.placements) == nil then topology.placements = {} end
local group = cjson.decode(ARGV[3])

local eligible, order = {}, {}
for _, s in ipairs(topology.shards) do
  if s.state ~= 'draining' then
    eligible[s.id] = true
    order[#order + 1] = s.id
  end
end

local total, mine = {}, {}
for _, id in ipairs(order) do total[id], mine[id] = 0, 0 end
for _, shard in pairs(topology.placements) do
  if total[shard] ~= nil then total[shard] = total[shard] + 1 end
end
local pending = {}
for _, g in ipairs(group) do
  local placed = topology.placements[g.p]
  if placed == nil then pending[#pending + 1] = g
  elseif mine[placed] ~= nil then mine[placed] = mine[placed] + 1 end
end
if #pending == 0 then return {0, text} end
if #order == 0 then return {-4, text} end

-- Quotas: the least loaded shards (then by id, for a deterministic answer) take the remainder.
table.sort(order, function(a, b)
  if total[a] ~= total[b] then return total[a] < total[b] end
  return a < b
end)
local n, s = #group, #order
local quota = {}
for i, id in ipairs(order) do
  quota[id] = math.floor(n / s)
  if i <= n % s then quota[id] = quota[id] + 1 end
end

for _, g in ipairs(pending) do
  local chosen = nil
  for _, id in ipairs(g.prefs) do
    if eligible[id] and mine[id] < quota[id] then chosen = id break end
  end
  if chosen == nil then
    -- Existing placements already exceed some quotas: the eligible shard holding fewest of the group.
    for _, id in ipairs(order) do
      if chosen == nil or mine[id] < mine[chosen] then chosen = id end
    end
  end
  topology.placements[g.p] = chosen
  mine[chosen] = mine[chosen] + 1
  total[chosen] = total[chosen] + 1
end
topology.version = redis.call('INCR', KEYS[3])
text = cjson.encode(topology)
redis.call('SET', KEYS[1], text)
return {1, text}
