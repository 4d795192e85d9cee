--[[
  Releases a lock only if the caller still holds it (its token), so that a holder whose
  lock expired never releases another's.

    Input:
      KEYS[1] the lock
      ARGV[1] the caller's token

    Output:
      1 released, 0 not held by the caller
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
