--[[
  Revokes an API key: it stops authenticating at once (announced to every router), and
  its tombstone waits in the tenant's revoking hash until the caller has recorded it on
  the shards (then the caller removes it; a retry of the revocation finishes it).

    Input:
      KEYS[1] control marker
      KEYS[2] control version counter
      KEYS[3] tenant keys      hash keyId -> digest
      KEYS[4] tenant revoking  hash keyId -> tombstone record JSON
      KEYS[5] api key          hash of the key's digest
      ARGV[1] the control marker the caller knows
      ARGV[2] keyId   ARGV[3] digest   ARGV[4] record key   ARGV[5] revocation channel

    Output:
      {0, tombstone record JSON}
      {-1}  the control marker differs or is missing
      {-3}  the tenant has no such live key (with that digest)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] then return {-3} end
local version = redis.call('INCR', KEYS[2])
local record = cjson.encode({ key = ARGV[4], version = version, deleted = true })
redis.call('DEL', KEYS[5])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], record)
redis.call('PUBLISH', ARGV[5], ARGV[3])
return {0, record}
