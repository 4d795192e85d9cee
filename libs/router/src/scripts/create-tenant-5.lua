--[[
  Creates a tenant and its first API key, once: a tenant that exists, in Redis or (after
  a rebuild) in the shards' records restored into Redis, is never created again.

    Input:
      KEYS[1] control marker
      KEYS[2] control version counter
      KEYS[3] tenant        hash { partitions, retention, quota?, createdAt, version }
      KEYS[4] tenant keys   hash keyId -> digest
      KEYS[5] api key       hash { tenant, keyId, version }
      ARGV[1] the control marker the caller knows
      ARGV[2] partitions   ARGV[3] retention JSON   ARGV[4] quota JSON or ''
      ARGV[5] createdAt    ARGV[6] tenant           ARGV[7] keyId   ARGV[8] digest

    Output:
      {0, tenant version, key version}
      {-1}  the control marker differs or is missing
      {-2}  the tenant exists
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {-2} end
local tenantVersion = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], 'partitions', ARGV[2], 'retention', ARGV[3], 'createdAt', ARGV[5], 'version', tenantVersion)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], 'quota', ARGV[4]) end
local keyVersion = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[5], 'tenant', ARGV[6], 'keyId', ARGV[7], 'version', keyVersion)
redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
return {0, tenantVersion, keyVersion}
