--[[
  Allocates `count` contiguous global positions in one step, above `floor`.

  Positions are decimal strings: Lua numbers are doubles and lose integers beyond 2^53,
  so values are compared by length then lexically (canonical, non-negative decimals),
  incremented with INCRBY (exact int64) and read back with GET, never through tonumber.

    Input:
      KEYS[1] counter   highest position handed out (decimal string; absent = 0)
      KEYS[2] marker    epoch id written by the last seed or re-seed
      KEYS[3] members   set of member ids of the cluster
      KEYS[4] fence     this member's fence generation (integer; absent = 0): raised
                        when a partition it owns is fenced for a move (DESIGN.md,
                        "Moving a partition")

      ARGV[1] marker the caller last saw
      ARGV[2] caller's high-water: highest counter value it ever observed (decimal)
      ARGV[3] caller's member id
      ARGV[4] how many member ids the caller knows
      ARGV[5] count (decimal integer ≥ 1)
      ARGV[6] floor (decimal integer ≥ 0)
      ARGV[7] highest allowed base: 2^63-1 - count (decimal)
      ARGV[8] the fence generation every write of the caller's batch was admitted
              under ('' = not checked)

    Output:
      {0, last}             allocated last-count+1 .. last
      {0, last, id, ...}    the same, with every member id, when the caller's member count differs
      {-1}                  marker missing or different: the caller must join or re-seed first
      {-2, base}            max(counter, floor) + count would exceed 2^63-1: nothing changed
      {-3, counter}         counter below the caller's high-water: Redis lost data; marker deleted
      {-5, generation}      the member was fenced after some write of the batch was
                            admitted: nothing allocated (the writes may be for a
                            partition that is moving; the caller re-checks ownership)
]]
local counterKey, markerKey, membersKey = KEYS[1], KEYS[2], KEYS[3]

local function lessThan(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local marker = redis.call('GET', markerKey)
if not marker or marker ~= ARGV[1] then
  return {-1}
end

if ARGV[8] ~= '' then
  local fence = tonumber(redis.call('GET', KEYS[4]) or '0')
  if fence > tonumber(ARGV[8]) then return {-5, tostring(fence)} end
end

local counter = redis.call('GET', counterKey) or '0'
if lessThan(counter, ARGV[2]) then
  -- Counters only grow; a value below one already observed means lost writes. Every
  -- member must re-seed, so the marker goes.
  redis.call('DEL', markerKey)
  return {-3, counter}
end

local base = counter
if lessThan(counter, ARGV[6]) then base = ARGV[6] end
if lessThan(ARGV[7], base) then
  return {-2, base}
end

if base ~= counter then redis.call('SET', counterKey, base) end
redis.call('INCRBY', counterKey, ARGV[5])
local result = {0, redis.call('GET', counterKey)}

redis.call('SADD', membersKey, ARGV[3])
if redis.call('SCARD', membersKey) ~= tonumber(ARGV[4]) then
  for _, id in ipairs(redis.call('SMEMBERS', membersKey)) do result[#result + 1] = id end
end
return result
