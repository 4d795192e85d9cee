--[[
  Adds an API key to an existing tenant.

    Input:
      KEYS[1] control marker
      KEYS[2] control version counter
      KEYS[3] tenant        hash (must exist)
      KEYS[4] tenant keys   hash keyId -> digest
      KEYS[5] api key       hash { tenant, keyId, version }
      ARGV[1] the control marker the caller knows
      ARGV[2] tenant   ARGV[3] keyId   ARGV[4] digest

    Output:
      {0, key version}
      {-1}  the control marker differs or is missing
      {-3}  no such tenant
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if redis.call('EXISTS', KEYS[3]) == 0 then return {-3} end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[5], 'tenant', ARGV[2], 'keyId', ARGV[3], 'version', version)
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
return {0, version}
