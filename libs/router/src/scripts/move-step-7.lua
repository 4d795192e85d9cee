--[[
  One step of a partition move (DESIGN.md, "Moving a partition"), atomic with the
  topology it changes. Steps that change the topology take a new epoch and record
  version and are announced; the caller records the topology on the shards.

    Input:
      KEYS[1] topology       JSON { epoch, shards, placements, fenced, fences, version }
      KEYS[2] control marker
      KEYS[3] control version counter
      KEYS[4] the move       JSON record
      KEYS[5] moving         partition -> move id, while a move of the partition is under way
      KEYS[6] lock           the lock of the move's BullMQ job (the token of the run holding it)
      KEYS[7] the source's fence generation (the sequencer refuses it positions above the generation its writes were admitted under)
      ARGV[1] the control marker the caller knows
      ARGV[2] step: 'begin' | 'save' (progress; copying -> tailing) | 'fence' | 'flip' | 'rollback'
      ARGV[3] the move record JSON to store (begin, save: the whole record; others: fields merged)
      ARGV[4] channel to announce a change on
      ARGV[5] the caller's lock token (not read by 'begin')

    Output:
      {1, topology JSON, move JSON}  done
      {-1}                           the control marker differs or is missing
      {-2}                           no topology stored
      {-3, reason}                   refused: 'moving' (begin: another move of the partition),
                                     'owner' (begin: the source does not own it; fence: it changed),
                                     'target' (begin, fence, flip: no such shard, or draining), 'state', 'lock'
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local text = redis.call('GET', KEYS[1])
if not text then return {-2} end
local topology = cjson.decode(text)
for _, k in ipairs({'placements', 'fenced', 'fences'}) do
  if type(topology[k]) ~= 'table' or next(topology[k]) == nil then topology[k] = {} end
end
local step, given = ARGV[2], cjson.decode(ARGV[3])
local p = given.partition

local function store(move)
  local encoded = cjson.encode(move)
  redis.call('SET', KEYS[4], encoded)
  return encoded
end
-- The target may have been drained or removed since the move began (a removal counts
-- placements only: a move's target owns nothing until the flip). The fence and the flip
-- refuse such a target, so the move rolls back instead of placing the partition on a
-- shard that is leaving or gone.
local function targetLive(id)
  for _, s in ipairs(topology.shards) do
    if s.id == id then return s.state ~= 'draining' end
  end
  return false
end
local function commit(move)
  topology.epoch = topology.epoch + 1
  topology.version = redis.call('INCR', KEYS[3])
  text = cjson.encode(topology)
  redis.call('SET', KEYS[1], text)
  local encoded = store(move)
  redis.call('PUBLISH', ARGV[4], tostring(topology.epoch))
  return {1, text, encoded}
end

if step == 'begin' then
  if redis.call('EXISTS', KEYS[5]) == 1 then return {-3, 'moving'} end
  if topology.placements[p] ~= given.from then return {-3, 'owner'} end
  local target = false
  for _, s in ipairs(topology.shards) do
    if s.id == given.to and s.state ~= 'draining' then target = true end
  end
  if not target or given.to == given.from then return {-3, 'target'} end
  redis.call('SET', KEYS[5], given.id)
  return {1, text, store(given)}
end

local current = redis.call('GET', KEYS[4])
if not current then return {-3, 'state'} end
local move = cjson.decode(current)
if redis.call('GET', KEYS[6]) ~= ARGV[5] then return {-3, 'lock'} end
if move.state == 'done' or move.state == 'rolled_back' then
  if step == 'save' then return {1, text, store(given)} end
  return {-3, 'state'}
end

if step == 'save' then
  -- The copy's end is the one state change a save makes.
  if given.state ~= move.state and not (move.state == 'copying' and given.state == 'tailing') then return {-3, 'state'} end
  return {1, text, store(given)}
elseif step == 'fence' then
  if move.state ~= 'tailing' then return {-3, 'state'} end
  if topology.placements[p] ~= move.from then return {-3, 'owner'} end
  if not targetLive(move.to) then return {-3, 'target'} end
  local generation = redis.call('INCR', KEYS[7])
  topology.fences[move.from] = generation
  topology.fenced[p] = move.id
  for k, v in pairs(given) do move[k] = v end
  move.state = 'fencing'
  move.generation = generation
  return commit(move)
elseif step == 'flip' then
  if move.state ~= 'fencing' or topology.fenced[p] ~= move.id then return {-3, 'state'} end
  if not targetLive(move.to) then return {-3, 'target'} end
  topology.placements[p] = move.to
  topology.fenced[p] = nil
  for k, v in pairs(given) do move[k] = v end
  move.state = 'done'
  redis.call('DEL', KEYS[5])
  return commit(move)
elseif step == 'rollback' then
  if topology.fenced[p] == move.id then topology.fenced[p] = nil end
  for k, v in pairs(given) do move[k] = v end
  move.state = 'rolled_back'
  redis.call('DEL', KEYS[5])
  return commit(move)
end
return redis.error_reply('unknown move step ' .. step)
