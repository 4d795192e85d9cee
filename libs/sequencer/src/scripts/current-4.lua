--[[
  Reads the counter, checking the caller's marker and high-water like allocate-4. A
  caller in the removed set is not added back to members (reseed-5.lua).

    Input:
      KEYS[1] counter   highest position handed out (decimal string; absent = 0)
      KEYS[2] marker    epoch id written by the last seed or re-seed
      KEYS[3] members   set of member ids of the cluster
      KEYS[4] removed   set of member ids removed from the cluster

      ARGV[1] marker the caller last saw
      ARGV[2] caller's high-water: highest counter value it ever observed (decimal)
      ARGV[3] caller's member id
      ARGV[4] how many member ids the caller knows

    Output:
      {0, counter}            the counter ('0' when absent)
      {0, counter, id, ...}   the same, with every member id, when the caller's member count differs
      {-1}                    marker missing or different: the caller must join or re-seed first
      {-3, counter}           counter below the caller's high-water: Redis lost data; marker deleted
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

local counter = redis.call('GET', counterKey) or '0'
if lessThan(counter, ARGV[2]) then
  redis.call('DEL', markerKey)
  return {-3, counter}
end

local result = {0, counter}
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 0 then redis.call('SADD', membersKey, ARGV[3]) end
if redis.call('SCARD', membersKey) ~= tonumber(ARGV[4]) then
  for _, id in ipairs(redis.call('SMEMBERS', membersKey)) do result[#result + 1] = id end
end
return result
