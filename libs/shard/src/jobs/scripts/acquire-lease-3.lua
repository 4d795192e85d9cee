--[[
  Takes the lease of one unit of maintenance work (a partition, or a shard's buckets) for
  one job run, unless another run holds it or a run at a newer ownership epoch already ran
  on the unit (this holder's view of the topology is stale). Records the acquisition.

    Input:
      KEYS[1] lease         string "<token> <epoch>", with an expiry
      KEYS[2] epoch floor   string: the newest ownership epoch a run of this unit held
      KEYS[3] records       stream of lease events
      ARGV[1] token   ARGV[2] epoch   ARGV[3] ttl ms   ARGV[4] unit   ARGV[5] shard   ARGV[6] job id

    Output:
      {0, now ms}      taken (recorded: event acquired, with expiresAt)
      {-1}             held by another run
      {-2, floor}      the unit ran at a newer epoch than ARGV[2]
]]
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if floor > tonumber(ARGV[2]) then return {-2, floor} end
if not redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'NX', 'PX', ARGV[3]) then return {-1} end
redis.call('SET', KEYS[2], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'event', 'acquired', 'unit', ARGV[4], 'token', ARGV[1], 'epoch', ARGV[2], 'shard', ARGV[5], 'job', ARGV[6], 'at', now, 'expiresAt', now + tonumber(ARGV[3]))
return {0, now}
