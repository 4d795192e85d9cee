--[[
  A tenant's append quota: admits appends, in order, while the events of the current
  one-second window (Redis's clock, the same for every router) stay within the limit.
  Refused appends count for nothing.

    Input:
      KEYS[1] the tenant's quota window   hash { window, used }
      ARGV[1] events per second allowed
      ARGV[2..n] the events of each append asking, in arrival order

    Output:
      { admitted: 1 or 0 per append, in order;  ms left in the window }
]]
local limit = tonumber(ARGV[1])
local now = redis.call('TIME')
local second = tonumber(now[1])
local window = tonumber(redis.call('HGET', KEYS[1], 'window'))
local used = 0
if window == second then used = tonumber(redis.call('HGET', KEYS[1], 'used')) or 0 end
local admitted = {}
for i = 2, #ARGV do
  local n = tonumber(ARGV[i])
  if used + n <= limit then
    used = used + n
    admitted[i - 1] = 1
  else
    admitted[i - 1] = 0
  end
end
redis.call('HSET', KEYS[1], 'window', second, 'used', used)
redis.call('PEXPIRE', KEYS[1], 2000)
return { admitted, 1000 - math.floor(tonumber(now[2]) / 1000) }
