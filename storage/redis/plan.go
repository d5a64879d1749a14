package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// RunPlan runs p as one script, so in one round trip (lua/plan.lua).
// A server that lost the deployment's state refuses it with an error that
// is both recovery.ErrUnavailable and recovery.ErrStateLost.
func (r *Store) RunPlan(ctx context.Context, p *recovery.Plan) (recovery.Outcome, error) {
	o, err := r.runPlan(ctx, p)
	if errors.Is(err, recovery.ErrStateLost) && r.holdOver(ctx) {
		return r.runPlan(ctx, p)
	}
	return o, err
}

func (r *Store) runPlan(ctx context.Context, p *recovery.Plan) (recovery.Outcome, error) {
	e, err := r.learnEpoch(ctx)
	if err != nil {
		return recovery.Outcome{}, err
	}
	keys, args, err := r.planArgs(p, e)
	if err != nil {
		return recovery.Outcome{}, err
	}
	res, err := r.run(ctx, planScript, keys, args...).Slice()
	if err != nil {
		return recovery.Outcome{}, redisError("plan", err)
	}
	if len(res) != 15 {
		return recovery.Outcome{}, errors.New("plan: malformed reply from redis")
	}
	if err := r.epochReply(ctx, e, res[11], res[12]); err != nil {
		return recovery.Outcome{}, err
	}
	o, err := decodeOutcome(res[:11], p.Counts)
	if soft, _ := res[13].([]any); len(soft) == 3 && err == nil {
		i := int(soft[0].(int64))
		o.Soft, o.SoftCounter = i, counterContext(p.Counts[i-1], soft[1], soft[2])
	}
	if b, _ := res[14].([]any); len(b) == 3 && err == nil {
		fields, _ := b[2].([]any)
		rec, rerr := decodeRecord(fields)
		if rerr != nil {
			return recovery.Outcome{}, rerr
		}
		o.Blocked, o.Tripped, o.Block = true, b[1] == int64(1), rec.Lock
	}
	return o, err
}

// opNames are the names lua/plan.lua knows the ops by.
var opNames = [...]string{
	recovery.OpNone:    "none",
	recovery.OpCreate:  "create",
	recovery.OpResend:  "resend",
	recovery.OpAttempt: "attempt",
	recovery.OpFinish:  "finish",
}

// planArgs returns the keys and the arguments of p's script (lua/plan.lua
// says their order), under the epoch e.
func (r *Store) planArgs(p *recovery.Plan, e *epochState) ([]string, []any, error) {
	if int(p.Op) >= len(opNames) {
		return nil, nil, fmt.Errorf("plan: unknown op %d", p.Op)
	}
	now := r.clock.Now()
	keys := make([]string, 1, 12)
	keys[0] = r.epochKey()
	args := make([]any, 0, 64)
	args = append(args, now.UnixMilli(), r.base, opNames[p.Op], e.id, e.floor.Load())
	switch p.Op {
	case recovery.OpCreate:
		f := p.Flow
		data, err := json.Marshal(f)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding flow: %w", err)
		}
		keys = append(keys, r.flowKey(f.ID))
		args = append(args, data, f.Attempts, f.Sends, f.CodeHash, f.SentAt.UnixMilli(),
			f.ExpiresAt.UnixMilli(), f.ExpiresAt.Sub(now).Milliseconds(), f.Account)
	case recovery.OpResend:
		keys = append(keys, r.flowKey(p.FlowID))
		args = append(args, p.Now.UnixMilli(), p.Interval.Milliseconds(), p.CodeHash,
			p.ExpiresAt.UnixMilli(), p.ExpiresAt.Sub(p.Now).Milliseconds(), p.MaxAttempts)
	case recovery.OpAttempt:
		keys = append(keys, r.flowKey(p.FlowID))
		args = append(args, p.MaxAttempts)
	case recovery.OpFinish:
		data, err := json.Marshal(p.Token)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding token: %w", err)
		}
		keys = append(keys, r.flowKey(p.FlowID), r.tokenKey(p.Token.Hash))
		args = append(args, data, p.Token.ExpiresAt.UnixMilli(), p.Token.ExpiresAt.Sub(now).Milliseconds())
	}
	// key declares k and returns its index in keys (from 1, as Lua counts),
	// once for a key that several steps name.
	key := func(k string) int {
		for i, have := range keys {
			if have == k {
				return i + 1
			}
		}
		keys = append(keys, k)
		return len(keys)
	}
	// record is the index of a step's record, 0 for the flow's account.
	record := func(kind, k string, ofFlow bool) int {
		if ofFlow {
			return 0
		}
		return key(r.lockKey(kind, k))
	}
	args = append(args, len(p.Locks))
	for _, l := range p.Locks {
		args = append(args, l.Kind, l.Key, record(l.Kind, l.Key, l.OfFlow))
	}
	args = append(args, len(p.Counts))
	for _, c := range p.Counts {
		counter := 0
		if !c.OfFlow {
			counter = key(r.counterKey(c.Scope, c.Key))
		}
		args = append(args, c.Scope, c.Key, counter, c.Rate.Limit, c.Rate.Period.Milliseconds(), flag(c.Peek)+2*flag(c.Soft), c.Events())
	}
	// strike is the arguments of a strike of kind and key under q.
	strike := func(kind, k string, ofFlow bool, q recovery.Policy) []any {
		return []any{kind, k, record(kind, k, ofFlow), key(r.lockIndex(kind)), q.Threshold, q.Window.Milliseconds(),
			q.Duration.Milliseconds(), q.MaxDuration.Milliseconds(), flag(q.Run), q.Permanent, q.Growth}
	}
	args = append(args, len(p.Strikes))
	for _, s := range p.Strikes {
		args = append(args, strike(s.Kind, s.Key, s.OfFlow, s.Policy)...)
	}
	args = append(args, len(p.Ends))
	for _, e := range p.Ends {
		args = append(args, e.Kind, e.Key, record(e.Kind, e.Key, e.OfFlow), key(r.lockIndex(e.Kind)), flag(e.Forgive))
	}
	b := p.Breaker
	if b.Key == "" {
		return keys, append(args, 0), nil
	}
	args = append(args, 1, breakerModes[b.Mode], key(r.counterKey(limiter.ScopeSent, b.Key)), key(r.counterKey(limiter.ScopeEntered, b.Key)),
		b.Rule.Window.Milliseconds(), b.Rule.MinSent, b.Rule.MaxEntered)
	return keys, append(args, strike(recovery.KindPrefix, b.Key, false, b.Policy)...), nil
}

// breakerModes are the names lua/plan.lua knows a breaker's modes by.
var breakerModes = [...]string{
	recovery.BreakerSend:    "send",
	recovery.BreakerPeek:    "peek",
	recovery.BreakerEntered: "entered",
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decodeOutcome reads the reply of lua/plan.lua to a plan of counts.
func decodeOutcome(res []any, counts []recovery.Count) (recovery.Outcome, error) {
	if len(res) != 11 {
		return recovery.Outcome{}, errors.New("plan: malformed reply from redis")
	}
	n := func(v any) int64 { i, _ := v.(int64); return i }
	var o recovery.Outcome
	o.Refused, o.Index, o.Full = recovery.Step(n(res[0])), int(n(res[1])), n(res[2]) == 1
	if o.Refused == recovery.StepCount {
		if o.Index < 0 || o.Index >= len(counts) {
			return recovery.Outcome{}, errors.New("plan: malformed refusal from redis")
		}
		// The count and the window's end (ms) of the counter, as ulule's
		// Get or Peek tells them.
		o.Counter = counterContext(counts[o.Index], res[4], res[5])
	}
	if lock, _ := res[3].([]any); len(lock) > 0 {
		rec, err := decodeRecord(lock)
		if err != nil {
			return recovery.Outcome{}, err
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
			return recovery.Outcome{}, err
		}
		o.Flow = f
	}
	o.Exhausted, o.Won = n(res[8]) == 1, n(res[9]) == 1
	struck, _ := res[10].([]any)
	for _, s := range struck {
		pair, _ := s.([]any)
		if len(pair) != 2 {
			return recovery.Outcome{}, errors.New("plan: malformed strike from redis")
		}
		fields, _ := pair[1].([]any)
		rec, err := decodeRecord(fields)
		if err != nil {
			return recovery.Outcome{}, err
		}
		o.Strikes = append(o.Strikes, recovery.Strike{Set: n(pair[0]) == 1, Lock: rec.Lock})
	}
	return o, nil
}

// counterContext is the state of c's counter as a plan's reply gives it:
// the count, and the end of its window in Unix ms.
func counterContext(c recovery.Count, count, reset any) ulimiter.Context {
	n, _ := count.(int64)
	end, _ := reset.(int64)
	return common.GetContextFromState(time.Time{}, c.Rate, time.UnixMilli(end), n)
}
