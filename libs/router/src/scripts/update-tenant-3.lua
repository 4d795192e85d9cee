--[[
  Changes an existing tenant's retention and quota (partitions never change), in place.

    Input:
      KEYS[1] control marker
      KEYS[2] control version counter
      KEYS[3] tenant        hash { partitions, retention, quota?, createdAt, version } (must exist)
      ARGV[1] the control marker the caller knows
      ARGV[2] retention.maxAge: seconds, 'null' (remove it) or '' (keep it)
      ARGV[3] quota JSON, 'null' (remove it) or '' (keep it)

    Output:
      {0, version, partitions, retention JSON, quota JSON or '', createdAt}
      {-1}  the control marker differs or is missing
      {-3}  no such tenant
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if redis.call('EXISTS', KEYS[3]) == 0 then return {-3} end
local version = redis.call('INCR', KEYS[2])
if ARGV[2] == 'null' then
  redis.call('HSET', KEYS[3], 'retention', '{}')
elseif ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], 'retention', '{"maxAge":' .. tostring(tonumber(ARGV[2])) .. '}')
end
if ARGV[3] == 'null' then
  redis.call('HDEL', KEYS[3], 'quota')
elseif ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], 'quota', ARGV[3])
end
redis.call('HSET', KEYS[3], 'version', version)
local t = redis.call('HMGET', KEYS[3], 'partitions', 'retention', 'quota', 'createdAt')
return {0, version, t[1], t[2] or '{}', t[3] or '', t[4] or ''}
