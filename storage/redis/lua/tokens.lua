-- A reset token's spending.
--
-- KEYS[1] the token.
-- ARGV: op, then for 'hold': now (ms), the end of the hold (ms).
--
-- 'hold' returns the token's data after holding it, 0 while an earlier
-- hold lasts, or nil for a missing or expired token. 'release' lifts the
-- hold if the token still exists (an HSET alone would recreate a deleted
-- token without a time to live). 'spend' deletes it: a script, so that it
-- waits for replicas like every write.
local op, now, hold_until = ARGV[1], tonumber(ARGV[2]), ARGV[3]

if op == 'hold' then
	local t = redis.call('HMGET', KEYS[1], 'data', 'expires_at', 'held_until')
	if not t[1] then return false end
	if tonumber(t[2]) <= now then
		redis.call('DEL', KEYS[1])
		return false
	end
	if tonumber(t[3]) > now then return 0 end
	redis.call('HSET', KEYS[1], 'held_until', hold_until)
	return t[1]
elseif op == 'release' then
	if redis.call('EXISTS', KEYS[1]) == 1 then
		redis.call('HSET', KEYS[1], 'held_until', 0)
	end
	return 0
elseif op == 'spend' then
	redis.call('DEL', KEYS[1])
	return 0
end
return redis.error_reply('unknown op ' .. tostring(op))
