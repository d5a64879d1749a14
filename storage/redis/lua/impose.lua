-- What support does to a record: limiter.Impose, and the end of a run.
--
-- KEYS[1] the record, KEYS[2] its kind's index of locks.
-- ARGV: op, 'impose' or 'lift'; now (ms); then for 'impose': the lock's
-- length (ms; 0: until lifted), kind, key.
--
-- 'impose' locks the record for a time or until lifted, never shortening a
-- lock in force, keeps its strikes and window, and indexes the lock. A
-- record made for the lock alone lives as long as the lock; one kept for
-- good (an account's run) stays so; one that lives for a client's window
-- lives until the later of the window and the lock. It returns {set, the
-- values of recordFields}.
--
-- 'lift' deletes the record and its index entry and returns 1 if its lock
-- was in force.
local op, now, length, kind, key = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]

if op == 'lift' then
	local r = redis.call('HMGET', KEYS[1], 'until', 'perm')
	redis.call('ZREM', KEYS[2], KEYS[1])
	redis.call('DEL', KEYS[1])
	if r[2] == '1' or (r[1] and tonumber(r[1]) > now) then return 1 end
	return 0
elseif op ~= 'impose' then
	return redis.error_reply('unknown op ' .. tostring(op))
end

local ttl = redis.call('PTTL', KEYS[1])
local r = redis.call('HMGET', KEYS[1], 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
local since, untilms = tonumber(r[1]) or 0, tonumber(r[2]) or 0
local perm = r[3] == '1'
local strikes, locks = tonumber(r[4]) or 0, tonumber(r[5]) or 0
local inwin, winend = tonumber(r[6]) or 0, tonumber(r[7]) or 0
local set = 0
if not (perm or untilms > now) then set, since = 1, now end
if length == 0 then
	perm, untilms = true, 0
elseif not perm and untilms < now + length then
	untilms = now + length
end
redis.call('HSET', KEYS[1], 'kind', kind, 'key', key, 'since', since, 'until', untilms,
	'perm', perm and 1 or 0, 'strikes', strikes, 'locks', locks, 'inwin', inwin, 'winend', winend, 'imposed', since)
if perm or ttl == -1 then
	redis.call('PERSIST', KEYS[1])
else
	redis.call('PEXPIRE', KEYS[1], math.max(ttl, untilms - now))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], perm and '+inf' or untilms, KEYS[1])
return {set, kind, key, since, untilms, perm and 1 or 0, strikes, locks, inwin, winend, since}
