package storage

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// planScript is limiter.PlanStore.RunPlan on the server: the whole of one
// request in one script, so one round trip, atomic like every script.
// Keys it derives (from the plan, or the account of the flow it reads) share
// the deployment's hash tag with KEYS[1], so they are in its Cluster slot.
//
// ARGV: now (ms), the key base, the op, the flow ID, the epoch's id and
// the store's floor of it (see redisepoch.go); then the count of
// lock checks and for each kind, key, of-flow; the count of counters and
// for each scope, key, of-flow, limit, window (ms), peek; the count of
// strikes and for each kind, key, of-flow, threshold, window (ms), duration
// (ms), longest (ms), keep-run, permanent; the count of ends and for each
// kind, key, of-flow, forgive; then the op's arguments (see RunPlan).
//
// It returns {refused step, index, full, lock fields, count, reset (ms),
// flow state (0 ok, 1 not found, 2 too early), flow fields, exhausted, won,
// strikes, epoch seq, epoch state}, each strike {set, lock fields}; the
// epoch state is 0, 1 when the plan was refused because the server lost
// the deployment's state, or the id of an acknowledged epoch it adopted.
var (
	planScript  = redis.NewScript(planLua + "return plan(ARGV)\n")
	plansScript = redis.NewScript(planLua + plansLoop)
)

// planLua defines the Lua function plan(A), which runs the plan on
// arguments A, and count, the counter step it takes for each of its counts.
const planLua = countLua + "local function plan(A)" + planBody + "end\n"

// plansScript runs several plans, one after the other, as one script:
// ARGV is their count and then, for each, the count of its arguments and
// the arguments; it returns the result of each. A batch of plans (see
// batcher) is one script on the server rather than one each, which is most
// of what a plan costs there.
const plansLoop = `
local out, at = {}, 2
for p = 1, tonumber(ARGV[1]) do
	local n, A = tonumber(ARGV[at]), {}
	for j = 1, n do A[j] = ARGV[at + j] end
	out[p] = plan(A)
	at = at + n + 1
end
return out
`

// planBody is the plan on arguments A, as planScript describes ARGV.
const planBody = `
local now, base, op = tonumber(A[1]), A[2], tonumber(A[3])
local fkey = base .. 'flow:' .. A[4]
local i = 7
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
local locks, counts, strikes, ends = steps(3), steps(6), steps(9), steps(4)

local flow, account, missing = false, false, false
local seq, estate, soft = 0, 0, {}
local function result(step, index, lock, count, reset, state, exhausted, won, struck)
	return {step, index, 0, lock or {}, count or 0, reset or 0, state or 0, flow or {}, exhausted or 0, won or 0, struck or {}, seq, estate, soft}
end

-- The epoch: a server that lost the deployment's state refuses the plan
-- before it reads or changes anything, and from then on every plan, until
-- an operator acknowledges the loss (redisepoch.go).
-- A plan that strikes counts seq up, since a strike is what a server that
-- went back in time must not forget; any other plan only reads it, which
-- costs no write to the AOF or the replicas. A plan of counters alone (the
-- check before an SMS goes out) skips it: its start was checked already.
if op ~= 0 or #locks > 0 or #strikes > 0 then
	local ek, floor = base .. 'epoch', tonumber(A[6])
	local e = redis.call('HMGET', ek, 'id', 'lost', 'acked', 'seq')
	seq = tonumber(e[4]) or 0
	local back = seq < floor
	if #strikes > 0 then
		seq = redis.call('HINCRBY', ek, 'seq', 1)
		back = seq <= floor
	end
	if not e[2] and e[1] ~= A[5] and e[3] == '1' and seq > floor then
		estate = e[1]
	elseif e[2] or e[1] ~= A[5] or back then
		if not e[2] then redis.call('HSET', ek, 'lost', now) end
		estate = 1
		return result(0, 0)
	end
end
local function keyof(key, offlow)
	if offlow == '1' then return account end
	return key
end

if op >= 2 then
	local at = now
	if op == 2 then at = tonumber(A[i]) end
	local f = redis.call('HMGET', fkey, 'data', 'attempts', 'sends', 'code_hash', 'sent_at', 'expires_at', 'account')
	if f[1] and tonumber(f[6]) <= at then
		redis.call('DEL', fkey)
		f[1] = false
	end
	if f[1] and f[7] then
		flow, account = {f[1], f[2], f[3], f[4], f[5], f[6]}, f[7]
	elseif op ~= 3 then
		return result(0, 0, nil, 0, 0, 1)
	else
		missing = true
	end
	-- A flow whose attempts are spent is dead to a resend as well.
	if op == 2 and tonumber(flow[2]) >= tonumber(A[i + 5]) then return result(0, 0, nil, 0, 0, 1) end
	if op == 2 and at - tonumber(flow[5]) < tonumber(A[i + 1]) then return result(0, 0, nil, 0, 0, 2) end
end

for j, l in ipairs(locks) do
	local key = keyof(l[2], l[3])
	if key then
		local r = redis.call('HMGET', base .. 'lock:' .. l[1] .. ':' .. key, 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
		if r[2] and (r[3] == '1' or tonumber(r[2]) > now) then
			return result(1, j - 1, {l[1], key, r[1] or 0, r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0, r[6] or 0, r[7] or 0})
		end
	end
end

-- A counter's mode: 0 counts, 1 peeks; 2 and 3 the same, soft: its
-- refusal skips the soft counters after it and does not end the plan.
for j, c in ipairs(counts) do
	local key = keyof(c[2], c[3])
	local mode = tonumber(c[6])
	if key and not (mode >= 2 and #soft > 0) then
		-- ulule's Get, or for a peek its Peek, on the key scope:key. A
		-- peek refuses once the limit is reached, a count once it is
		-- passed; the time left is read only for a refusal, which reports
		-- when the window ends.
		local n = 1
		if mode % 2 == 1 then n = 0 end
		local upto = tonumber(c[4]) + n
		local got, ttl = count(base .. 'count:' .. c[1] .. ':' .. key, n, tonumber(c[5]), upto)
		if got >= upto then
			if mode < 2 then return result(2, j - 1, nil, got, now + ttl) end
			soft = {j, got, now + ttl}
		end
	end
end

if op == 1 then
	-- Every field of a flow is written, so HSET replaces one whole.
	if tonumber(A[i + 6]) > 0 then
		redis.call('HSET', fkey, 'data', A[i], 'attempts', A[i + 1], 'sends', A[i + 2],
			'code_hash', A[i + 3], 'sent_at', A[i + 4], 'expires_at', A[i + 5], 'account', A[i + 7])
		redis.call('PEXPIRE', fkey, A[i + 6])
	else
		redis.call('DEL', fkey)
	end
elseif op == 2 then
	local sends = tostring(tonumber(flow[3]) + 1)
	if tonumber(A[i + 4]) > 0 then
		redis.call('HSET', fkey, 'code_hash', A[i + 2], 'sent_at', A[i], 'expires_at', A[i + 3], 'sends', sends)
		redis.call('PEXPIRE', fkey, A[i + 4])
	else
		redis.call('DEL', fkey)
	end
	flow = {flow[1], flow[2], sends, A[i + 2], A[i], A[i + 3]}
elseif op == 3 then
	if missing then return result(0, 0, nil, 0, 0, 1) end
	local n = redis.call('HINCRBY', fkey, 'attempts', 1)
	if n > tonumber(A[i]) then
		redis.call('DEL', fkey)
		return result(0, 0, nil, 0, 0, 1, 1)
	end
	flow[2] = tostring(n)
elseif op == 4 then
	redis.call('DEL', fkey)
end

local function record(kind, key)
	local k = base .. 'lock:' .. kind .. ':' .. key
	local r = redis.call('HMGET', k, 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
	return k, {since = tonumber(r[1]) or 0, untilms = tonumber(r[2]) or 0, perm = r[3] == '1',
		strikes = tonumber(r[4]) or 0, locks = tonumber(r[5]) or 0, inwin = tonumber(r[6]) or 0,
		winend = tonumber(r[7]) or 0, exists = r[4] ~= false}
end
local function fields(kind, key, r)
	return {kind, key, r.since, r.untilms, r.perm and 1 or 0, r.strikes, r.locks, r.inwin, r.winend}
end
-- limiter.Policy.Strike, as strikeScript.
local function strike(s, key)
	local kind = s[1]
	local threshold, window, duration, longest = tonumber(s[4]), tonumber(s[5]), tonumber(s[6]), tonumber(s[7])
	local run, permanent = s[8] == '1', tonumber(s[9])
	local k, r = record(kind, key)
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
		while n < r.locks + 1 and d < longest do d, n = d * 2, n + 1 end
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
		local idx = base .. 'locks:' .. kind
		redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
		redis.call('ZADD', idx, r.perm and '+inf' or r.untilms, k)
	end
	return false, set, fields(kind, key, r)
end
-- limiter.Policy.Forgive, as forgiveScript.
local function forgive(kind, key)
	local k, r = record(kind, key)
	if not r.exists or r.perm or r.untilms > now then return end
	if now < r.winend and r.inwin > 0 then r.inwin = r.inwin - 1 end
	if r.strikes > 0 then r.strikes = r.strikes - 1 end
	if r.strikes == 0 and r.locks == 0 then
		redis.call('DEL', k)
	else
		redis.call('HSET', k, 'strikes', r.strikes, 'inwin', r.inwin)
	end
end

local struck = {}
for j, s in ipairs(strikes) do
	local key = keyof(s[2], s[3])
	local refused, set, f = strike(s, key)
	if refused then
		for m = 1, j - 1 do forgive(strikes[m][1], keyof(strikes[m][2], strikes[m][3])) end
		return result(3, j - 1, f)
	end
	struck[j] = {set and 1 or 0, f}
end

for _, e in ipairs(ends) do
	local key = keyof(e[2], e[3])
	if e[4] == '1' then
		forgive(e[1], key)
	else
		local k = base .. 'lock:' .. e[1] .. ':' .. key
		redis.call('ZREM', base .. 'locks:' .. e[1], k)
		redis.call('DEL', k)
	end
end

if op == 4 then
	local tk = base .. 'token:' .. A[i]
	redis.call('DEL', tk)
	if tonumber(A[i + 3]) > 0 then
		redis.call('HSET', tk, 'data', A[i + 1], 'expires_at', A[i + 2], 'held_until', 0)
		redis.call('PEXPIRE', tk, A[i + 3])
	end
	return result(0, 0, nil, 0, 0, 0, 0, 1, struck)
end
return result(0, 0, nil, 0, 0, 0, 0, 0, struck)
`

// RunPlan runs p as one script, so in one round trip; see planScript.
// A server that lost the deployment's state refuses it with an error that
// is both recovery.ErrUnavailable and recovery.ErrStateLost.
func (r *Redis) RunPlan(ctx context.Context, p *limiter.Plan) (limiter.Outcome, error) {
	o, err := r.runPlan(ctx, p)
	if errors.Is(err, recovery.ErrStateLost) && r.holdOver(ctx) {
		return r.runPlan(ctx, p)
	}
	return o, err
}

func (r *Redis) runPlan(ctx context.Context, p *limiter.Plan) (limiter.Outcome, error) {
	e, err := r.learnEpoch(ctx)
	if err != nil {
		return limiter.Outcome{}, err
	}
	route, args, err := r.planArgs(p, e)
	if err != nil {
		return limiter.Outcome{}, err
	}
	res, err := r.run(ctx, planScript, []string{route}, args...).Slice()
	if err != nil {
		return limiter.Outcome{}, redisError("plan", err)
	}
	if len(res) != 14 {
		return limiter.Outcome{}, errors.New("plan: malformed reply from redis")
	}
	if err := r.epochReply(e, res[11], res[12]); err != nil {
		return limiter.Outcome{}, err
	}
	o, err := decodeOutcome(res[:11], p.Counts)
	if soft, _ := res[13].([]any); len(soft) == 3 && err == nil {
		i := int(soft[0].(int64))
		o.Soft, o.SoftCounter = i, counterContext(p.Counts[i-1], soft[1], soft[2])
	}
	return o, err
}

// planArgs returns the key a plan's script is routed by and its arguments,
// under the epoch e.
func (r *Redis) planArgs(p *limiter.Plan, e *epochState) (string, []any, error) {
	now := r.clock.Now()
	args := make([]any, 0, 48)
	args = append(args, now.UnixMilli(), r.base, int(p.Op), p.FlowID, e.id, e.floor.Load(), len(p.Locks))
	for _, l := range p.Locks {
		args = append(args, l.Kind, l.Key, flag(l.OfFlow))
	}
	args = append(args, len(p.Counts))
	for _, c := range p.Counts {
		args = append(args, c.Scope, c.Key, flag(c.OfFlow), c.Rate.Limit, c.Rate.Period.Milliseconds(), flag(c.Peek)+2*flag(c.Soft))
	}
	args = append(args, len(p.Strikes))
	for _, s := range p.Strikes {
		q := s.Policy
		args = append(args, s.Kind, s.Key, flag(s.OfFlow), q.Threshold, q.Window.Milliseconds(),
			q.Duration.Milliseconds(), q.MaxDuration.Milliseconds(), flag(q.Run), q.Permanent)
	}
	args = append(args, len(p.Ends))
	for _, e := range p.Ends {
		args = append(args, e.Kind, e.Key, flag(e.OfFlow), flag(e.Forgive))
	}
	route := r.base + "count:"
	switch p.Op {
	case limiter.OpCreate:
		f := p.Flow
		data, err := json.Marshal(f)
		if err != nil {
			return "", nil, fmt.Errorf("encoding flow: %w", err)
		}
		args = append(args, data, f.Attempts, f.Sends, f.CodeHash, f.SentAt.UnixMilli(),
			f.ExpiresAt.UnixMilli(), f.ExpiresAt.Sub(now).Milliseconds(), f.Account)
		route = r.flowKey(f.ID)
		args[3] = f.ID
	case limiter.OpResend:
		args = append(args, p.Now.UnixMilli(), p.Interval.Milliseconds(), p.CodeHash,
			p.ExpiresAt.UnixMilli(), p.ExpiresAt.Sub(p.Now).Milliseconds(), p.MaxAttempts)
		route = r.flowKey(p.FlowID)
	case limiter.OpAttempt:
		args = append(args, p.MaxAttempts)
		route = r.flowKey(p.FlowID)
	case limiter.OpFinish:
		data, err := json.Marshal(p.Token)
		if err != nil {
			return "", nil, fmt.Errorf("encoding token: %w", err)
		}
		args = append(args, hex.EncodeToString(p.Token.Hash), data, p.Token.ExpiresAt.UnixMilli(),
			p.Token.ExpiresAt.Sub(now).Milliseconds())
		route = r.flowKey(p.FlowID)
	}
	return route, args, nil
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decodeOutcome reads planScript's reply to a plan of counts.
func decodeOutcome(res []any, counts []limiter.Count) (limiter.Outcome, error) {
	if len(res) != 11 {
		return limiter.Outcome{}, errors.New("plan: malformed reply from redis")
	}
	n := func(v any) int64 { i, _ := v.(int64); return i }
	var o limiter.Outcome
	o.Refused, o.Index, o.Full = limiter.Step(n(res[0])), int(n(res[1])), n(res[2]) == 1
	if o.Refused == limiter.StepCount {
		if o.Index < 0 || o.Index >= len(counts) {
			return limiter.Outcome{}, errors.New("plan: malformed refusal from redis")
		}
		// The count and the window's end (ms) of the counter, as ulule's
		// Get or Peek tells them.
		o.Counter = counterContext(counts[o.Index], res[4], res[5])
	}
	if lock, _ := res[3].([]any); len(lock) > 0 {
		rec, err := decodeRecord(lock)
		if err != nil {
			return limiter.Outcome{}, err
		}
		o.Lock = rec.Lock
	}
	switch n(res[6]) {
	case 1:
		o.FlowErr = recovery.ErrNotFound
	case 2:
		o.FlowErr = recovery.ErrTooEarly
	}
	if vals, _ := res[7].([]any); len(vals) > 0 {
		f, err := decodeFlow(vals)
		if err != nil {
			return limiter.Outcome{}, err
		}
		o.Flow = f
	}
	o.Exhausted, o.Won = n(res[8]) == 1, n(res[9]) == 1
	struck, _ := res[10].([]any)
	for _, s := range struck {
		pair, _ := s.([]any)
		if len(pair) != 2 {
			return limiter.Outcome{}, errors.New("plan: malformed strike from redis")
		}
		fields, _ := pair[1].([]any)
		rec, err := decodeRecord(fields)
		if err != nil {
			return limiter.Outcome{}, err
		}
		o.Strikes = append(o.Strikes, limiter.Strike{Set: n(pair[0]) == 1, Lock: rec.Lock})
	}
	return o, nil
}

// counterContext is the state of c's counter as a plan's reply gives it:
// the count, and the end of its window in Unix ms.
func counterContext(c limiter.Count, count, reset any) ulimiter.Context {
	n, _ := count.(int64)
	end, _ := reset.(int64)
	return common.GetContextFromState(time.Time{}, c.Rate, time.UnixMilli(end), n)
}
