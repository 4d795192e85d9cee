--[[
  Extends a lock only if the caller still holds it (its token).

    Input:
      KEYS[1] the lock
      ARGV[1] the caller's token
      ARGV[2] new expiry, ms

    Output:
      1 extended, 0 not held by the caller
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
