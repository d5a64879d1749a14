-- Appends entries to support's trails (trail.go).
--
-- KEYS[1] the index of trails (a sorted set of their keys, scored by when
-- each was last written); KEYS[1+i] the trail of entry i.
-- ARGV: now (ms); the trails' time to live (ms); the most entries a trail
-- keeps; the most trails the index keeps; then entry i (JSON) at 4+i.
--
-- Each trail keeps its newest entries and lives for the time to live after
-- its last one. The index forgets the trails that expired, and when it
-- holds more than its bound, the trails written least recently go, so that
-- no flood grows the trails without bound.
local index = KEYS[1]
local now, ttl, most, bound = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 2, #KEYS do
	local key = KEYS[i]
	redis.call('RPUSH', key, ARGV[3 + i])
	redis.call('LTRIM', key, -most, -1)
	redis.call('PEXPIRE', key, ttl)
	redis.call('ZADD', index, now, key)
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl)
local over = redis.call('ZCARD', index) - bound
if over > 0 then
	local gone = redis.call('ZPOPMIN', index, over)
	for i = 1, #gone, 2 do
		redis.call('DEL', gone[i])
	end
end
redis.call('PEXPIRE', index, ttl)
return #KEYS - 1
