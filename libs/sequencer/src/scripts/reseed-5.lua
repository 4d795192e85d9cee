--[[
  Joins a seeded cluster, or takes part in its (re-)seed.

  Seeded (marker present) and the counter is at or above the caller's high-water: the
  caller joins. Its member ids are added and the current marker is returned.

  Otherwise (no marker: a fresh or wiped Redis, or a counter below the caller's
  high-water, which deletes the marker): the caller reports its report value (its
  high-water, or more: what its previous run may have promised) in the reseed hash
  and adds the member ids it knows. Once every id in members has a report,
  the counter becomes the highest of the reports and of the counter itself, the new
  marker is written, the reports are cleared, and the new marker is returned. Until
  then the answer lists the members still to report.

  Removed members (redis-sequencer.ts, "Removed members"): the caller's tombstones
  are added to the removed set and taken out of members, in the same call that records
  its report (the caller's high-water covers every position a tombstoned member was
  handed out). An id in the removed set is never added to members again, not even by
  itself, so a re-seed never waits for it.

    Input:
      KEYS[1] counter   highest position handed out (decimal string; absent = 0)
      KEYS[2] marker    epoch id written by the last seed or re-seed
      KEYS[3] members   set of member ids of the cluster
      KEYS[4] reseed    hash: member id -> reported high-water (decimal)
      KEYS[5] removed   set of member ids removed from the cluster

      ARGV[1] caller's member id
      ARGV[2] caller's high-water (decimal): a counter below it means lost data
      ARGV[3] caller's report (decimal, ≥ ARGV[2]): what a re-seed counts for it
      ARGV[4] marker to write if this call completes the seed (fresh random id)
      ARGV[5] n: how many other member ids the caller knows
      ARGV[6 .. 5+n] every other member id the caller knows
      ARGV[6+n ..] every member id the caller knows as removed

    Output:
      {0, marker, counter, id, ...}   joined or seeded: the marker to pass from now on,
                                      the counter, and every member id
      {-4, id, ...}                   re-seed waiting for the reports of these members
]]
local counterKey, markerKey, membersKey, reseedKey, removedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local self, highWater, report = ARGV[1], ARGV[2], ARGV[3]
local knownEnd = 5 + tonumber(ARGV[5])

local function lessThan(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

for i = knownEnd + 1, #ARGV do
  redis.call('SADD', removedKey, ARGV[i])
  redis.call('SREM', membersKey, ARGV[i])
end
local function addMember(id)
  if redis.call('SISMEMBER', removedKey, id) == 0 then redis.call('SADD', membersKey, id) end
end
addMember(self)
for i = 6, knownEnd do addMember(ARGV[i]) end

local counter = redis.call('GET', counterKey) or '0'
local marker = redis.call('GET', markerKey)
if marker and not lessThan(counter, highWater) then
  local result = {0, marker, counter}
  for _, id in ipairs(redis.call('SMEMBERS', membersKey)) do result[#result + 1] = id end
  return result
end
if marker then
  -- A counter below what the caller observed: Redis lost data. Every member re-seeds.
  redis.call('DEL', markerKey)
end

local previous = redis.call('HGET', reseedKey, self)
if not previous or lessThan(previous, report) then
  redis.call('HSET', reseedKey, self, report)
end

local members = redis.call('SMEMBERS', membersKey)
local missing = {-4}
for _, id in ipairs(members) do
  if redis.call('HEXISTS', reseedKey, id) == 0 then missing[#missing + 1] = id end
end
-- Every report counts, a removed member's too (one that still runs reports, and is
-- not waited for): each is a value some counter reached.
local high = counter
for _, reported in ipairs(redis.call('HVALS', reseedKey)) do
  if lessThan(high, reported) then high = reported end
end
if #missing > 1 then return missing end

redis.call('SET', counterKey, high)
redis.call('SET', markerKey, ARGV[4])
redis.call('DEL', reseedKey)
local result = {0, ARGV[4], high}
for _, id in ipairs(members) do result[#result + 1] = id end
return result
