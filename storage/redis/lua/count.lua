-- count(k, n, window, upto): the one counter step of Redis, which plan.lua
-- and counter.lua both take. It is ulule's fixed window as its Redis store
-- keeps it: the key holds the count, and its time to live is what is left
-- of the window, which opens with the first event.
--
-- It adds n events (0 reads) to the counter k, whose window lasts window
-- ms, and returns the count and, once the count reaches upto, the ms left
-- of the window; below upto it returns -1 for them, which spares a plan's
-- count within its limit the PTTL. A counter that lost its time to live
-- (PERSIST) gets a whole window back when it is read so, rather than
-- counting for good.
local function count(k, n, window, upto)
	local c
	if n > 0 then
		c = redis.call('INCRBY', k, n)
		if c == n then
			redis.call('PEXPIRE', k, window)
			return c, window
		end
	else
		c = tonumber(redis.call('GET', k) or '0')
	end
	if c < upto then return c, -1 end
	local ttl = redis.call('PTTL', k)
	if ttl == -1 then redis.call('PEXPIRE', k, window) end
	if ttl < 0 then ttl = window end
	return c, ttl
end
