-- plan(K, A): limiter.PlanStore.RunPlan on the server, the whole of one
-- request in one script, so one round trip, atomic like every script.
-- plans.lua calls it for each plan of a batch; alone, it is called on KEYS
-- and ARGV.
--
-- K, the keys: K[1] the deployment's epoch; K[2] the flow, for an op on
-- one; K[3] the token, for 'finish'; then the records, indexes of locks and
-- counters of the steps, each named by its index in K. The keys of a step
-- on the flow's account (of-flow, index 0) cannot be known before the flow
-- is read: the script builds them from base, the deployment's prefix and
-- hash tag, which every key in K starts with too, so they are all in K[1]'s
-- Cluster slot.
--
-- A, the arguments: now (ms), base, the op ('none', 'create', 'resend',
-- 'attempt', 'finish'), the epoch's id and the store's floor of it (see
-- epoch.go); then the op's own arguments, named below; then the count of
-- lock checks and for each kind, key, record; the count of counters and for
-- each scope, key, counter, limit, window (ms), mode, events (0 for a
-- peek); the count of strikes and for each kind, key, record, index,
-- threshold, window (ms), duration (ms), longest (ms), keep-run,
-- permanent, growth; the count of ends and for each kind, key, record,
-- index, forgive; the count of breakers (0 or 1) and for it its mode
-- ('send', 'peek', 'entered'), its counters of codes sent and entered,
-- window (ms), least codes sent, most percent entered, and the eleven
-- arguments of a strike of its block. record, counter and index are
-- indexes in K, record and counter 0 for the flow's account.
--
-- It returns {refused step, index, full, lock fields, count, reset (ms),
-- flow state (0 ok, 1 not found, 2 too early), flow fields, exhausted, won,
-- strikes, epoch seq, epoch state, soft, breaker}, each strike {set, lock
-- fields}, the breaker {blocked, tripped, lock fields} or empty;
-- the epoch state is 0, 1 when the plan was refused because the server
-- lost the deployment's state, or the id of an acknowledged epoch it
-- adopted.
local function plan(K, A)
local now, base, op, epoch_id, floor = tonumber(A[1]), A[2], A[3], A[4], tonumber(A[5])
local ekey, fkey, tkey = K[1], K[2], K[3]

-- The op's own arguments.
local data, attempts, sends, code_hash, sent_at, expires_at, ttl, flow_account -- create
local interval, max_attempts -- resend (with sent_at, code_hash, expires_at, ttl), attempt
local token_data, token_expires_at -- finish (with ttl)
local i = 6
if op == 'create' then
	data, attempts, sends, code_hash, sent_at, expires_at, ttl, flow_account = unpack(A, i, i + 7)
	i = i + 8
elseif op == 'resend' then
	sent_at, interval, code_hash, expires_at, ttl, max_attempts = unpack(A, i, i + 5)
	interval, max_attempts = tonumber(interval), tonumber(max_attempts)
	i = i + 6
elseif op == 'attempt' then
	max_attempts = tonumber(A[i])
	i = i + 1
elseif op == 'finish' then
	token_data, token_expires_at, ttl = unpack(A, i, i + 2)
	i = i + 3
elseif op ~= 'none' then
	return redis.error_reply('unknown op ' .. tostring(op))
end

local function steps(width)
	local n, t = tonumber(A[i]), {}
	i = i + 1
	for j = 1, n do
		local s = {}
		for k = 1, width do s[k] = A[i + k - 1] end
		t[j], i = s, i + width
	end
	return t
end
local locks, counts, strikes, ends = steps(3), steps(7), steps(11), steps(5)
local breaker = steps(17)[1]

local flow, account, missing = false, false, false
local seq, estate, soft, blocked = 0, 0, {}, {}
local function result(step, index, lock, count, reset, state, exhausted, won, struck)
	return {step, index, 0, lock or {}, count or 0, reset or 0, state or 0, flow or {}, exhausted or 0, won or 0, struck or {}, seq, estate, soft, blocked}
end

-- The epoch: a server that lost the deployment's state refuses the plan
-- before it reads or changes anything, and from then on every plan, until
-- an operator acknowledges the loss (epoch.go).
-- A plan that strikes counts seq up, since a strike is what a server that
-- went back in time must not forget; any other plan only reads it, which
-- costs no write to the AOF or the replicas. A plan of counters alone (the
-- check before an SMS goes out) skips it: its start was checked already.
if op ~= 'none' or #locks > 0 or #strikes > 0 then
	local e = redis.call('HMGET', ekey, 'id', 'lost', 'acked', 'seq')
	seq = tonumber(e[4]) or 0
	local back = seq < floor
	if #strikes > 0 then
		seq = redis.call('HINCRBY', ekey, 'seq', 1)
		back = seq <= floor
	end
	if not e[2] and e[1] ~= epoch_id and e[3] == '1' and seq > floor then
		estate = e[1]
	elseif e[2] or e[1] ~= epoch_id or back then
		if not e[2] then redis.call('HSET', ekey, 'lost', now) end
		estate = 1
		return result(0, 0)
	end
end

-- keyof returns a step's key and the Redis key at index idx of K, or, for
-- index 0, the flow's account and the key under base that the prefix p
-- makes of it (false when there is no flow).
local function keyof(key, idx, p)
	idx = tonumber(idx)
	if idx > 0 then return key, K[idx] end
	if account then return account, base .. p .. account end
	return false
end

if op == 'resend' or op == 'attempt' or op == 'finish' then
	-- A resend is judged at its own time, sent_at.
	local deadline = now
	if op == 'resend' then deadline = tonumber(sent_at) end
	local f = redis.call('HMGET', fkey, 'data', 'attempts', 'sends', 'code_hash', 'sent_at', 'expires_at', 'account')
	if f[1] and tonumber(f[6]) <= deadline then
		redis.call('DEL', fkey)
		f[1] = false
	end
	if f[1] and f[7] then
		flow, account = {f[1], f[2], f[3], f[4], f[5], f[6]}, f[7]
	elseif op ~= 'attempt' then
		return result(0, 0, nil, 0, 0, 1)
	else
		missing = true
	end
	-- A flow whose attempts are spent is dead to a resend as well.
	if op == 'resend' and tonumber(flow[2]) >= max_attempts then return result(0, 0, nil, 0, 0, 1) end
	if op == 'resend' and deadline - tonumber(flow[5]) < interval then return result(0, 0, nil, 0, 0, 2) end
end

-- The lock in force on the record k of kind and key, or nil.
local function inforce(kind, key, k)
	local r = redis.call('HMGET', k, 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
	if r[2] and (r[3] == '1' or tonumber(r[2]) > now) then
		return {kind, key, r[1] or 0, r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0, r[6] or 0, r[7] or 0}
	end
end

for j, l in ipairs(locks) do
	local key, k = keyof(l[2], l[3], 'lock:' .. l[1] .. ':')
	if key then
		local lock = inforce(l[1], key, k)
		if lock then return result(1, j - 1, lock) end
	end
end

-- The breaker's block refuses the plan's code, not the plan.
if breaker and breaker[1] ~= 'entered' then
	local lock = inforce(breaker[7], breaker[8], K[tonumber(breaker[9])])
	if lock then blocked = {1, 0, lock} end
end

-- A counter's mode: 0 counts, 1 peeks; 2 and 3 the same, soft: its
-- refusal skips the soft counters after it and does not end the plan.
for j, c in ipairs(counts) do
	local key, k = keyof(c[2], c[3], 'count:' .. c[1] .. ':')
	local mode = tonumber(c[6])
	if key and not (mode >= 2 and (#soft > 0 or #blocked > 0)) then
		-- ulule's Get, or for a peek its Peek, on the key scope:key. A
		-- peek refuses once the limit is reached, a count once it is
		-- passed; the time left is read only for a refusal, which reports
		-- when the window ends.
		local n, upto = tonumber(c[7]), tonumber(c[4])
		if n > 0 then upto = upto + 1 end
		local got, left = count(k, n, tonumber(c[5]), upto)
		if got >= upto then
			if mode < 2 then return result(2, j - 1, nil, got, now + left) end
			soft = {j, got, now + left}
		end
	end
end

if op == 'create' then
	-- Every field of a flow is written, so HSET replaces one whole.
	if tonumber(ttl) > 0 then
		redis.call('HSET', fkey, 'data', data, 'attempts', attempts, 'sends', sends,
			'code_hash', code_hash, 'sent_at', sent_at, 'expires_at', expires_at, 'account', flow_account)
		redis.call('PEXPIRE', fkey, ttl)
	else
		redis.call('DEL', fkey)
	end
elseif op == 'resend' then
	local n = tostring(tonumber(flow[3]) + 1)
	if tonumber(ttl) > 0 then
		redis.call('HSET', fkey, 'code_hash', code_hash, 'sent_at', sent_at, 'expires_at', expires_at, 'sends', n)
		redis.call('PEXPIRE', fkey, ttl)
	else
		redis.call('DEL', fkey)
	end
	flow = {flow[1], flow[2], n, code_hash, sent_at, expires_at}
elseif op == 'attempt' then
	if missing then return result(0, 0, nil, 0, 0, 1) end
	local n = redis.call('HINCRBY', fkey, 'attempts', 1)
	if n > max_attempts then
		redis.call('DEL', fkey)
		return result(0, 0, nil, 0, 0, 1, 1)
	end
	flow[2] = tostring(n)
elseif op == 'finish' then
	redis.call('DEL', fkey)
end

local function record(k)
	local r = redis.call('HMGET', k, 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
	return {since = tonumber(r[1]) or 0, untilms = tonumber(r[2]) or 0, perm = r[3] == '1',
		strikes = tonumber(r[4]) or 0, locks = tonumber(r[5]) or 0, inwin = tonumber(r[6]) or 0,
		winend = tonumber(r[7]) or 0, exists = r[4] ~= false}
end
local function fields(kind, key, r)
	return {kind, key, r.since, r.untilms, r.perm and 1 or 0, r.strikes, r.locks, r.inwin, r.winend}
end
-- limiter.Policy.Strike on the record k of kind and key, indexed in idx.
local function strike(s, key, k, idx)
	local kind = s[1]
	local threshold, window, duration, longest = tonumber(s[5]), tonumber(s[6]), tonumber(s[7]), tonumber(s[8])
	local run, permanent, growth = s[9] == '1', tonumber(s[10]), tonumber(s[11])
	if growth < 1 then growth = 2 end
	local r = record(k)
	if r.perm or r.untilms > now then return true, false, fields(kind, key, r) end
	if now >= r.winend then
		r.inwin, r.winend = 0, now + window
		if not run then r.strikes, r.locks = 0, 0 end
	end
	r.inwin, r.strikes = r.inwin + 1, r.strikes + 1
	local set = false
	if run and permanent > 0 and r.strikes >= permanent then
		r.perm, r.untilms, set = true, 0, true
	elseif r.inwin >= threshold then
		local d, n = duration, 1
		while n < r.locks + 1 and d < longest do d, n = d * growth, n + 1 end
		r.untilms, set = now + math.min(d, math.max(longest, duration)), true
	end
	if set then r.locks, r.since, r.inwin, r.winend = r.locks + 1, now, 0, now end
	redis.call('HSET', k, 'kind', kind, 'key', key, 'since', r.since, 'until', r.untilms,
		'perm', r.perm and 1 or 0, 'strikes', r.strikes, 'locks', r.locks, 'inwin', r.inwin, 'winend', r.winend)
	if run or r.perm then
		redis.call('PERSIST', k)
	else
		redis.call('PEXPIRE', k, math.max(1, math.max(r.untilms, r.winend) - now))
	end
	if set then
		redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
		redis.call('ZADD', idx, r.perm and '+inf' or r.untilms, k)
	end
	return false, set, fields(kind, key, r)
end
-- limiter.Policy.Forgive on the record k.
local function forgive(k)
	local r = record(k)
	if not r.exists or r.perm or r.untilms > now then return end
	if now < r.winend and r.inwin > 0 then r.inwin = r.inwin - 1 end
	if r.strikes > 0 then r.strikes = r.strikes - 1 end
	if r.strikes == 0 and r.locks == 0 then
		redis.call('DEL', k)
	else
		redis.call('HSET', k, 'strikes', r.strikes, 'inwin', r.inwin)
	end
end

-- The breaker counts the plan's code: limiter.Trips decides on the counts
-- of the window, and a trip is one strike on the prefix's record.
if breaker then
	local mode, sk, ek, window = breaker[1], K[tonumber(breaker[2])], K[tonumber(breaker[3])], tonumber(breaker[4])
	if mode == 'entered' and op == 'finish' then
		count(ek, 1, window, math.huge)
	elseif mode == 'send' and #blocked == 0 and #soft == 0 then
		local sent = count(sk, 1, window, math.huge)
		-- A window that opens drops the codes entered of the one before.
		if sent == 1 then redis.call('DEL', ek) end
		local entered = tonumber(redis.call('GET', ek) or '0')
		if sent >= tonumber(breaker[5]) and entered * 100 <= sent * tonumber(breaker[6]) then
			local s = {unpack(breaker, 7, 17)}
			local _, _, f = strike(s, s[2], K[tonumber(s[3])], K[tonumber(s[4])])
			redis.call('DEL', sk, ek)
			blocked = {1, 1, f}
		end
	elseif mode == 'peek' then
		-- A decoy's code reads what a code sent reads, and counts nothing.
		redis.call('GET', sk)
		redis.call('GET', ek)
	end
end

local struck = {}
for j, s in ipairs(strikes) do
	local key, k = keyof(s[2], s[3], 'lock:' .. s[1] .. ':')
	local refused, set, f = strike(s, key, k, K[tonumber(s[4])])
	if refused then
		for m = 1, j - 1 do
			local _, mk = keyof(strikes[m][2], strikes[m][3], 'lock:' .. strikes[m][1] .. ':')
			forgive(mk)
		end
		return result(3, j - 1, f)
	end
	struck[j] = {set and 1 or 0, f}
end

for _, e in ipairs(ends) do
	local _, k = keyof(e[2], e[3], 'lock:' .. e[1] .. ':')
	if e[5] == '1' then
		forgive(k)
	else
		redis.call('ZREM', K[tonumber(e[4])], k)
		redis.call('DEL', k)
	end
end

if op == 'finish' then
	redis.call('DEL', tkey)
	if tonumber(ttl) > 0 then
		redis.call('HSET', tkey, 'data', token_data, 'expires_at', token_expires_at, 'held_until', 0)
		redis.call('PEXPIRE', tkey, ttl)
	end
	return result(0, 0, nil, 0, 0, 0, 0, 1, struck)
end
return result(0, 0, nil, 0, 0, 0, 0, 0, struck)
end
