-- The deployment's epoch (epoch.go).
--
-- KEYS[1] the epoch.
-- ARGV: op, 'learn' or 'ack'; a new id; now (ms).
--
-- 'learn' makes the epoch hash when there is none, and returns its id, seq
-- and lost. A hash without an id was made by a plan's count after the key
-- was lost, and is marked lost.
--
-- 'ack' acknowledges a loss: it replaces the epoch with the new id, marked
-- acked, and moves seq past every store's floor. It returns {0, 0} when
-- there was no loss to acknowledge, and {1, seq} when there was.
local op, new_id, now = ARGV[1], ARGV[2], ARGV[3]

if op == 'learn' then
	local f = redis.call('HMGET', KEYS[1], 'id', 'seq', 'lost')
	if not f[1] then
		if redis.call('EXISTS', KEYS[1]) == 1 then
			if not f[3] then
				redis.call('HSET', KEYS[1], 'lost', now)
				f[3] = now
			end
		else
			redis.call('HSET', KEYS[1], 'id', new_id, 'seq', 0)
			f = {new_id, '0', false}
		end
	end
	return f
elseif op == 'ack' then
	if not redis.call('HGET', KEYS[1], 'lost') then return {0, 0} end
	local seq = math.max(tonumber(redis.call('HGET', KEYS[1], 'seq') or '0'), tonumber(now) * 1000)
	redis.call('DEL', KEYS[1])
	redis.call('HSET', KEYS[1], 'id', new_id, 'seq', string.format('%d', seq), 'acked', 1)
	return {1, string.format('%d', seq)}
end
return redis.error_reply('unknown op ' .. tostring(op))
