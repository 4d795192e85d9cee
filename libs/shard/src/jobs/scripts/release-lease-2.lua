--[[
  Releases a lease its holder still holds, and records the end of the run.

    Input:
      KEYS[1] lease     KEYS[2] records stream
      ARGV[1] token     ARGV[2] unit

    Output: 1 released, 0 not held by ARGV[1] (it expired: its last recorded expiry ended it)
]]
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ' ' then return 0 end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'event', 'released', 'unit', ARGV[2], 'token', ARGV[1], 'at', now)
return 1
