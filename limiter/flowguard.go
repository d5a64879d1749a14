package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Keeps reports whether the guard runs its decisions as plans of s, so
// that the FlowGuard methods change s.
func (g *Guard) Keeps(s recovery.Store) bool {
	if g.plans == nil || s == nil {
		return false
	}
	ps, ok := s.(PlanStore)
	return ok && ps == g.plans
}

// StartFlow is Start and then storing f, in one plan.
func (g *Guard) StartFlow(ctx context.Context, ip string, f recovery.Flow) error {
	if g.plans == nil {
		return errNoPlans
	}
	p := g.startPlan(ClientKey(ip), f.Account, false)
	p.Op, p.Flow = OpCreate, f
	_, err := g.run(ctx, &p)
	return err
}

// ResendFlow is Start for the flow's account and then the flow's resend, in
// one plan.
func (g *Guard) ResendFlow(ctx context.Context, ip, id string, codeHash []byte, now time.Time, interval time.Duration, expiresAt time.Time, maxAttempts int) (recovery.Flow, error) {
	if g.plans == nil {
		return recovery.Flow{}, errNoPlans
	}
	p := g.startPlan(ClientKey(ip), "", true)
	p.Op, p.FlowID, p.CodeHash, p.Now, p.Interval, p.ExpiresAt, p.MaxAttempts = OpResend, id, codeHash, now, interval, expiresAt, maxAttempts
	o, err := g.run(ctx, &p)
	if err != nil {
		return o.Flow, err
	}
	return o.Flow, o.FlowErr
}

// VerifyFlow is Verify, the flow's attempt and Guess, in one plan.
func (g *Guard) VerifyFlow(ctx context.Context, ip, id string, maxAttempts int) (recovery.Flow, recovery.Guess, error) {
	if g.plans == nil {
		return recovery.Flow{}, recovery.Guess{}, errNoPlans
	}
	client := ClientKey(ip)
	p := Plan{
		Locks:       g.lockChecks(client, "", true),
		Counts:      []Count{g.verifyIP.count(client, false)},
		Op:          OpAttempt,
		FlowID:      id,
		MaxAttempts: maxAttempts,
		Strikes:     g.strikeSteps(client, "", true),
	}
	o, err := g.run(ctx, &p)
	switch {
	case err != nil:
		return o.Flow, recovery.Guess{}, err
	case o.Exhausted:
		return o.Flow, recovery.Guess{}, recovery.ErrExhausted
	case o.FlowErr != nil:
		return o.Flow, recovery.Guess{}, o.FlowErr
	}
	guess := g.guess(o)
	if o.Full {
		guess.Uncounted = &recovery.Denial{Reason: recovery.ErrFull, Scope: ScopeLockout, RetryAfter: fullRetry}
	}
	return o.Flow, guess, nil
}

// RightFlow consumes the flow and, if this call did, is Right and stores t,
// in one plan.
func (g *Guard) RightFlow(ctx context.Context, ip, id string, t recovery.Token) (bool, error) {
	if g.plans == nil {
		return false, errNoPlans
	}
	p := Plan{Op: OpFinish, FlowID: id, Token: t, Ends: g.endSteps(ClientKey(ip), "", true)}
	o, err := g.run(ctx, &p)
	if err != nil {
		return false, err
	}
	return o.Won, nil
}

var errNoPlans = errors.New("limiter: the lock store runs no plans")

// startPlan checks the client's block and the account's lock, peeks the
// SMS budget and counts the start against the client and then the account,
// as Start does.
func (g *Guard) startPlan(client, account string, ofFlow bool) Plan {
	return Plan{
		Locks: g.lockChecks(client, account, ofFlow),
		Counts: []Count{
			g.smsGlobal.count("", true),
			g.startIP.count(client, false),
			g.startAccount.countOf(account, ofFlow),
		},
	}
}

// lockChecks checks the client's block and then the account's lock; an
// account that is neither given nor the flow's is not checked.
func (g *Guard) lockChecks(client, account string, ofFlow bool) []LockCheck {
	checks := make([]LockCheck, 1, 2)
	checks[0] = LockCheck{Kind: g.ipBlock.kind, Key: client}
	if account != "" || ofFlow {
		checks = append(checks, LockCheck{Kind: g.lockout.kind, Key: account, OfFlow: ofFlow})
	}
	return checks
}

// strikeSteps strike the client and then the account, as Guess does.
func (g *Guard) strikeSteps(client, account string, ofFlow bool) []StrikeStep {
	return []StrikeStep{
		{Kind: g.ipBlock.kind, Key: client, Policy: g.ipBlock.policy},
		{Kind: g.lockout.kind, Key: account, OfFlow: ofFlow, Policy: g.lockout.policy},
	}
}

// endSteps end the account's run and forgive the client's strike, as Right
// does.
func (g *Guard) endSteps(client, account string, ofFlow bool) []EndStep {
	return []EndStep{
		{Kind: g.lockout.kind, Key: account, OfFlow: ofFlow},
		{Kind: g.ipBlock.kind, Key: client, Forgive: true, Policy: g.ipBlock.policy},
	}
}

// run runs p and turns a refusal into the *Denial the sequential path gives.
func (g *Guard) run(ctx context.Context, p *Plan) (Outcome, error) {
	o, err := g.plans.RunPlan(ctx, p)
	if err != nil {
		return o, fmt.Errorf("checking limits: %w", err)
	}
	now := g.clock.Now()
	switch o.Refused {
	case StepLock:
		t, err := g.threshold(p.Locks[o.Index].Kind)
		if err != nil {
			return o, err
		}
		return o, t.denial(now, o.Lock)
	case StepCount:
		return o, g.limitOf(p.Counts[o.Index].Scope).denial(now, o.Counter)
	case StepFull:
		return o, &recovery.Denial{Reason: recovery.ErrFull, Scope: ScopeFlows, RetryAfter: max(time.Second, o.RetryAt.Sub(now))}
	case StepStrike:
		t, err := g.threshold(p.Strikes[o.Index].Kind)
		if err != nil {
			return o, err
		}
		if o.Full {
			return o, &recovery.Denial{Reason: recovery.ErrFull, Scope: t.scope, RetryAfter: fullRetry}
		}
		return o, t.denial(now, o.Lock)
	}
	return o, nil
}

// guess is the Guess of a plan's strikes: the block and lock they set.
func (g *Guard) guess(o Outcome) recovery.Guess {
	var set []error
	for _, s := range o.Strikes {
		if !s.Set {
			continue
		}
		t, err := g.threshold(s.Lock.Kind)
		if err != nil {
			continue
		}
		set = append(set, t.denial(s.Lock.Since, s.Lock))
	}
	switch len(set) {
	case 0:
		return recovery.Guess{}
	case 1:
		return recovery.Guess{Set: set[0]}
	}
	return recovery.Guess{Set: errors.Join(set...)}
}

func (g *Guard) limitOf(scope string) limit {
	for _, l := range []limit{g.startIP, g.startAccount, g.startPhone, g.verifyIP, g.smsGlobal} {
		if l.scope == scope {
			return l
		}
	}
	return limit{scope: scope}
}

// count is l's counter for key, peeked or counted.
func (l limit) count(key string, peek bool) Count {
	return Count{Scope: l.scope, Key: key, Rate: l.rate, Peek: peek}
}

// countOf is l's counted counter for key, or for the flow's account.
func (l limit) countOf(key string, ofFlow bool) Count {
	c := l.count(key, false)
	c.OfFlow = ofFlow
	return c
}

// Interface guards
var _ recovery.FlowGuard = (*Guard)(nil)
