--[[
  Extends a lease its holder still holds, and records the new expiry.

    Input:
      KEYS[1] lease     KEYS[2] records stream
      ARGV[1] token     ARGV[2] ttl ms     ARGV[3] unit

    Output: 1 renewed, 0 not held by ARGV[1] (expired, or taken by another run since)
]]
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ' ' then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'event', 'renewed', 'unit', ARGV[3], 'token', ARGV[1], 'at', now, 'expiresAt', now + tonumber(ARGV[2]))
return 1
