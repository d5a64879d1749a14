package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// planConfig is a guard's config whose windows and locks outlast a test
// by far, with every limit high but those a test lowers.
func planConfig(u time.Duration, change func(*limiter.Config)) limiter.Config {
	long := 1000 * u
	high := limiter.Rate{Events: 1 << 30, Window: long}
	c := limiter.DefaultConfig()
	c.StartIP, c.StartAccount, c.StartPhone, c.VerifyIP, c.SMSGlobal = high, high, high, high, high
	c.Lockout = limiter.Threshold{Failures: 1 << 30, Window: long, Duration: long}
	c.IPBlock = c.Lockout
	c.Breaker.Off = true        // the breaker's own tests turn it on (breaker.go)
	c.Shares = limiter.Shares{} // and the shares' theirs (spend.go)
	if change != nil {
		change(&c)
	}
	return c
}

// newPlanGuard returns a guard over the store h builds, which must be a
// recovery.Store, and the store.
func newPlanGuard(t *testing.T, h Harness, change func(*limiter.Config)) (*limiter.Guard, Store, Clock) {
	t.Helper()
	s, clk := h.New(t)
	if _, ok := s.(recovery.Store); !ok {
		t.Skip("skipped: this store is not a recovery.Store, so it runs no plans")
	}
	g, err := limiter.New(planConfig(h.Unit, change), s.(recovery.Store), clk)
	if err != nil {
		t.Fatal(err)
	}
	return g, s, clk
}

// StartFlow is a start through g, as the flow makes it, its code counted
// against the phone "phone:" + its account.
func StartFlow(ctx context.Context, g *limiter.Guard, ip string, f recovery.Flow) error {
	_, err := g.StartFlow(ctx, ip, f, "phone:"+f.Account)
	return err
}

// resendFlow is a resend through g, as the flow makes it: the checks for
// the flow's account, then the new code.
func resendFlow(ctx context.Context, g *limiter.Guard, s Store, ip, id string, hash []byte, now time.Time, interval time.Duration, expires time.Time, maxAttempts int) (recovery.Flow, error) {
	f, err := s.Flow(ctx, id)
	if err != nil {
		return f, err
	}
	// As the flow does: a spent flow, or one inside its interval, is
	// refused before anything is counted.
	switch {
	case f.Attempts >= maxAttempts:
		return f, recovery.ErrNotFound
	case now.Sub(f.SentAt) < interval:
		return f, recovery.ErrTooEarly
	}
	op := recovery.ResendOp{ID: id, CodeHash: hash, Now: now, Interval: interval, ExpiresAt: expires, MaxAttempts: maxAttempts}
	f, _, err = g.ResendFlow(ctx, ip, op, "phone:"+f.Account, false)
	return f, err
}

func scopeOf(err error) string {
	var d *recovery.Denial
	if errors.As(err, &d) {
		return d.Scope
	}
	return ""
}

// runPlans checks the store's plans through a limiter.Guard: each request
// in one step, with every invariant of the calls it replaces.
func runPlans(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()
	const ipA, ipB = "192.0.2.1", "192.0.2.2"

	t.Run("StartFlowCountsAndStores", func(t *testing.T) {
		t.Parallel()
		g, s, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartIP = limiter.Rate{Events: 2, Window: 1000 * u}
			c.StartAccount = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		for i := range 3 {
			f := newFlow(fmt.Sprintf("start-%d", i), clk, 100*u)
			f.Account = fmt.Sprintf("user%d@example.com", i)
			err := StartFlow(ctx, g, ipA, f)
			_, ferr := s.Flow(ctx, f.ID)
			if i < 2 {
				if err != nil || ferr != nil {
					t.Fatalf("start %d: %v, flow %v; want allowed and stored", i, err, ferr)
				}
				continue
			}
			if !errors.Is(err, recovery.ErrRateLimited) || scopeOf(err) != limiter.ScopeStartIP {
				t.Fatalf("third start from one client: %v, want start_ip", err)
			}
			if !errors.Is(ferr, recovery.ErrNotFound) {
				t.Fatalf("a refused start stored its flow: %v", ferr)
			}
		}
		// The refused start did not count against its account.
		for i := range 2 {
			f := newFlow(fmt.Sprintf("again-%d", i), clk, 100*u)
			f.Account = "user2@example.com"
			if err := StartFlow(ctx, g, ipB, f); err != nil {
				t.Fatalf("start %d for the account a refusal named: %v", i, err)
			}
		}
		f := newFlow("again-2", clk, 100*u)
		f.Account = "user2@example.com"
		if err := StartFlow(ctx, g, "192.0.2.3", f); scopeOf(err) != limiter.ScopeStartAccount {
			t.Fatalf("third start for one account: %v, want start_account", err)
		}
	})

	t.Run("SMSBudget", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartPhone = limiter.Rate{Events: 1, Window: 1000 * u}
			c.SMSGlobal = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		if err := g.SMS(ctx, "p1", ""); err != nil {
			t.Fatal(err)
		}
		if err := g.SMS(ctx, "p1", ""); scopeOf(err) != limiter.ScopeStartPhone {
			t.Fatalf("second code to one phone: %v, want start_phone", err)
		}
		if err := g.SMS(ctx, "p2", ""); err != nil {
			t.Fatalf("a refused phone spent the budget: %v", err)
		}
		if err := g.SMS(ctx, "p3", ""); scopeOf(err) != limiter.ScopeSMSGlobal {
			t.Fatalf("past the budget: %v, want sms_global", err)
		}
		if err := StartFlow(ctx, g, ipA, newFlow("someone", clk, 100*u)); scopeOf(err) != limiter.ScopeSMSGlobal {
			t.Fatalf("start with the budget spent: %v, want sms_global", err)
		}
	})

	t.Run("StartFlowCountsItsCode", func(t *testing.T) {
		t.Parallel()
		g, s, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartPhone = limiter.Rate{Events: 1, Window: 1000 * u}
			c.SMSGlobal = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		start := func(id, phone string, decoy bool) (sms, err error) {
			f := newFlow(id, clk, 100*u)
			f.Decoy = decoy
			sms, err = g.StartFlow(ctx, ipA, f, phone)
			_, ferr := s.Flow(ctx, id)
			if (err == nil) != (ferr == nil) {
				t.Fatalf("flow %s: start %v, stored %v", id, err, ferr)
			}
			return sms, err
		}
		// Decoys peek: they spend neither the phone's limit nor the budget.
		for i := range 3 {
			if sms, err := start(fmt.Sprintf("decoy-%d", i), "p1", true); sms != nil || err != nil {
				t.Fatalf("decoy %d: %v, %v", i, sms, err)
			}
		}
		if sms, err := start("a", "p1", false); sms != nil || err != nil {
			t.Fatalf("first code to a phone: %v, %v", sms, err)
		}
		// A refused code is not a refused start: the flow is stored.
		if sms, err := start("b", "p1", false); scopeOf(sms) != limiter.ScopeStartPhone || err != nil {
			t.Fatalf("second code to one phone: %v, %v; want start_phone, the flow stored", sms, err)
		}
		if sms, err := start("c", "p2", false); sms != nil || err != nil {
			t.Fatalf("a refused phone spent the budget: %v, %v", sms, err)
		}
		// The budget spent, every start is refused, a decoy's too.
		for _, decoy := range []bool{false, true} {
			if _, err := start(fmt.Sprint("past-", decoy), "p3", decoy); scopeOf(err) != limiter.ScopeSMSGlobal {
				t.Fatalf("a start past the budget (decoy %v): %v, want sms_global", decoy, err)
			}
		}
	})

	t.Run("ResendFlow", func(t *testing.T) {
		t.Parallel()
		g, s, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartIP = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		f := newFlow("resend", clk, 100*u)
		if err := StartFlow(ctx, g, ipA, f); err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		got, err := resendFlow(ctx, g, s, ipA, f.ID, []byte("new"), now, 2*u, now.Add(100*u), 5)
		if !errors.Is(err, recovery.ErrTooEarly) || got.Sends != 1 {
			t.Fatalf("resend inside the interval: %v, %d sends; want ErrTooEarly, 1", err, got.Sends)
		}
		clk.Advance(3 * u)
		now = clk.Now().UTC().Truncate(time.Millisecond)
		got, err = resendFlow(ctx, g, s, ipA, f.ID, []byte("new"), now, 2*u, now.Add(100*u), 5)
		if err != nil || got.Sends != 2 || string(got.CodeHash) != "new" || !got.SentAt.Equal(now) {
			t.Fatalf("resend after the interval: %v, %+v", err, got)
		}
		stored, err := s.Flow(ctx, f.ID)
		if err != nil || stored.Sends != 2 || string(stored.CodeHash) != "new" {
			t.Fatalf("stored after resend: %v, %+v", err, stored)
		}
		// The early one was not counted: this is the client's third.
		clk.Advance(3 * u)
		now = clk.Now()
		if _, err := resendFlow(ctx, g, s, ipA, f.ID, []byte("newer"), now, 2*u, now.Add(100*u), 5); scopeOf(err) != limiter.ScopeStartIP {
			t.Fatalf("third start or resend from a client: %v, want start_ip", err)
		}
		if stored, _ := s.Flow(ctx, f.ID); string(stored.CodeHash) != "new" {
			t.Fatalf("a refused resend changed the code")
		}
		if _, err := resendFlow(ctx, g, s, ipB, "missing", []byte("x"), now, 2*u, now.Add(100*u), 5); !errors.Is(err, recovery.ErrNotFound) {
			t.Fatalf("resend of a missing flow: %v, want ErrNotFound", err)
		}
	})

	t.Run("ResendOfSpentFlow", func(t *testing.T) {
		t.Parallel()
		g, s, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartIP = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		f := newFlow("spent", clk, 100*u)
		if err := StartFlow(ctx, g, ipA, f); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, _, err := g.Verify(ctx, ipB, f.ID, 3); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(3 * u)
		now := clk.Now()
		if _, err := resendFlow(ctx, g, s, ipA, f.ID, []byte("new"), now, 2*u, now.Add(100*u), 3); !errors.Is(err, recovery.ErrNotFound) {
			t.Fatalf("resend of a flow whose 3 attempts are spent: %v, want ErrNotFound", err)
		}
		if stored, err := s.Flow(ctx, f.ID); err != nil || stored.Sends != 1 || string(stored.CodeHash) == "new" {
			t.Fatalf("the spent flow after the refused resend: %+v, %v; want it unchanged", stored, err)
		}
		// Nothing was counted: the client has its second start left.
		if err := StartFlow(ctx, g, ipA, newFlow("next", clk, 100*u)); err != nil {
			t.Fatalf("a start after the refused resend: %v", err)
		}
	})

	t.Run("VerifyFlowOfMissingFlowCounts", func(t *testing.T) {
		t.Parallel()
		g, _, _ := newPlanGuard(t, h, func(c *limiter.Config) {
			c.VerifyIP = limiter.Rate{Events: 2, Window: 1000 * u}
		})
		for range 2 {
			if _, _, err := g.Verify(ctx, ipA, "nothing", 5); !errors.Is(err, recovery.ErrNotFound) || errors.Is(err, recovery.ErrExhausted) {
				t.Fatalf("verify of a missing flow: %v, want ErrNotFound", err)
			}
		}
		if _, _, err := g.Verify(ctx, ipA, "nothing", 5); scopeOf(err) != limiter.ScopeVerifyIP {
			t.Fatalf("third verify from a client: %v, want verify_ip", err)
		}
	})

	t.Run("ConcurrentAttemptsAreCountedFirst", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, nil)
		f := newFlow("attempts", clk, 100*u)
		if err := StartFlow(ctx, g, ipA, f); err != nil {
			t.Fatal(err)
		}
		var ok, exhausted, gone atomic.Int64
		var seen [6]atomic.Int64
		concurrently(200, func(i int) {
			got, _, err := g.Verify(ctx, fmt.Sprintf("198.51.100.%d", i%50), f.ID, 5)
			switch {
			case err == nil:
				ok.Add(1)
				if got.Attempts >= 1 && got.Attempts <= 5 {
					seen[got.Attempts].Add(1)
				}
			case errors.Is(err, recovery.ErrExhausted):
				exhausted.Add(1)
			case errors.Is(err, recovery.ErrNotFound):
				gone.Add(1)
			default:
				t.Errorf("verify %d: %v", i, err)
			}
		})
		if ok.Load() != 5 || exhausted.Load() != 1 || gone.Load() != 194 {
			t.Fatalf("200 concurrent attempts at 5: %d counted, %d exhausted, %d gone; want 5, 1, 194", ok.Load(), exhausted.Load(), gone.Load())
		}
		for n := 1; n <= 5; n++ {
			if seen[n].Load() != 1 {
				t.Errorf("attempt %d seen %d times, want once", n, seen[n].Load())
			}
		}
	})

	t.Run("ConcurrentGuessesNeverPassLockout", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.Lockout = limiter.Threshold{Failures: 5, Window: 1000 * u, Duration: 1000 * u}
		})
		const n = 200
		ids := make([]string, n)
		for i := range ids {
			f := newFlow(fmt.Sprintf("guess-%d", i), clk, 100*u)
			f.Account = "target@example.com"
			if err := StartFlow(ctx, g, fmt.Sprintf("203.0.113.%d", i%50), f); err != nil {
				t.Fatal(err)
			}
			ids[i] = f.ID
		}
		var counted, locks, refused atomic.Int64
		concurrently(n, func(i int) {
			_, guess, err := g.Verify(ctx, fmt.Sprintf("203.0.113.%d", i%50), ids[i], 5)
			switch {
			case errors.Is(err, recovery.ErrLocked):
				refused.Add(1)
			case err != nil:
				t.Errorf("guess %d: %v", i, err)
			default:
				counted.Add(1)
				if guess.LockedAccount() {
					locks.Add(1)
				}
			}
		})
		if counted.Load() != 5 || locks.Load() != 1 || refused.Load() != n-5 {
			t.Fatalf("%d concurrent guesses at lockout 5: %d counted, %d locked, %d refused; want 5, 1, %d",
				n, counted.Load(), locks.Load(), refused.Load(), n-5)
		}
		f := newFlow("after-lock", clk, 100*u)
		f.Account = "target@example.com"
		if err := StartFlow(ctx, g, ipB, f); !errors.Is(err, recovery.ErrLocked) {
			t.Fatalf("start for a locked account: %v, want ErrLocked", err)
		}
	})

	t.Run("RightFlowOnce", func(t *testing.T) {
		t.Parallel()
		g, s, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.Lockout = limiter.Threshold{Failures: 3, Window: 1000 * u, Duration: 1000 * u}
		})
		flows := make([]recovery.Flow, 4)
		for i := range flows {
			flows[i] = newFlow(fmt.Sprintf("right-%d", i), clk, 100*u)
			if err := StartFlow(ctx, g, ipA, flows[i]); err != nil {
				t.Fatal(err)
			}
		}
		// Two guesses counted, the second being right.
		for _, f := range flows[:2] {
			if _, _, err := g.Verify(ctx, ipA, f.ID, 5); err != nil {
				t.Fatal(err)
			}
		}
		tok := newToken("right", clk, 100*u)
		var won atomic.Int64
		concurrently(50, func(int) {
			ok, err := g.Right(ctx, ipA, recovery.Flow{ID: flows[1].ID}, tok)
			if err != nil {
				t.Errorf("RightFlow: %v", err)
			}
			if ok {
				won.Add(1)
			}
		})
		if won.Load() != 1 {
			t.Fatalf("50 concurrent RightFlow: %d consumed the flow, want 1", won.Load())
		}
		if _, err := s.Flow(ctx, flows[1].ID); !errors.Is(err, recovery.ErrNotFound) {
			t.Fatalf("flow after RightFlow: %v, want gone", err)
		}
		if got, err := s.BeginSpend(ctx, tok.Hash, u); err != nil || got.Account != tok.Account {
			t.Fatalf("token after RightFlow: %v, %+v", err, got)
		}
		// The run ended: two more guesses set no lock at a threshold of 3.
		for _, f := range flows[2:] {
			_, guess, err := g.Verify(ctx, ipA, f.ID, 5)
			if err != nil || guess.Set != nil {
				t.Fatalf("guess after a right code: %v, set %v; want counted, no lock", err, guess.Set)
			}
		}
		if ok, err := g.Right(ctx, ipA, recovery.Flow{ID: "missing"}, newToken("other", clk, 100*u)); ok || err != nil {
			t.Fatalf("RightFlow of a missing flow: %v, %v; want false", ok, err)
		}
		if _, err := s.BeginSpend(ctx, newToken("other", clk, 100*u).Hash, u); !errors.Is(err, recovery.ErrNotFound) {
			t.Fatalf("a RightFlow that lost stored its token: %v", err)
		}
	})

	t.Run("CountsAreTheStoresCounters", func(t *testing.T) {
		t.Parallel()
		g, s, _ := newPlanGuard(t, h, func(c *limiter.Config) {
			c.StartPhone = limiter.Rate{Events: 3, Window: 1000 * u}
		})
		ps := s.(recovery.Store)
		rate := ulimiter.Rate{Limit: 3, Period: 1000 * u}
		// A client's counter, a budget, and the global budget's bare key.
		for _, c := range []recovery.Count{
			{Scope: limiter.ScopeStartIP, Key: ipA, Rate: rate},
			{Scope: limiter.ScopeStartAccount, Key: "alice@example.com", Rate: rate},
			{Scope: limiter.ScopeSMSGlobal, Rate: rate},
		} {
			key := c.Scope + ":" + c.Key
			plan := func(peek bool) recovery.Outcome {
				t.Helper()
				c := c
				c.Peek = peek
				o, err := ps.RunPlan(ctx, &recovery.Plan{Counts: []recovery.Count{c}})
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				return o
			}
			if o := plan(false); o.Refused != recovery.StepNone {
				t.Fatalf("%s: first count refused: %+v", key, o)
			}
			if got, err := ps.Get(ctx, key, rate); err != nil || got.Remaining != 1 || got.Reached {
				t.Fatalf("%s: Get after the plan's count: %+v, %v; want 1 remaining", key, got, err)
			}
			if o := plan(false); o.Refused != recovery.StepNone {
				t.Fatalf("%s: third event refused: %+v", key, o)
			}
			o := plan(true)
			if want := (ulimiter.Context{Limit: 3, Remaining: 0, Reset: o.Counter.Reset}); o.Refused != recovery.StepCount || o.Counter != want {
				t.Fatalf("%s: peek of a spent counter: %+v, want refused, %+v", key, o, want)
			}
			// The same window's end, to the second (a server reads it
			// from a time to live, in ms).
			if got, err := ps.Peek(ctx, key, rate); err != nil || got.Remaining != 0 || got.Reached || max(got.Reset-o.Counter.Reset, o.Counter.Reset-got.Reset) > 1 {
				t.Fatalf("%s: Peek: %+v, %v; want spent, not passed, reset %d", key, got, err, o.Counter.Reset)
			}
			if got, err := ps.Increment(ctx, key, 2, rate); err != nil || !got.Reached {
				t.Fatalf("%s: Increment past the limit: %+v, %v", key, got, err)
			}
			if o := plan(false); o.Refused != recovery.StepCount || !o.Counter.Reached {
				t.Fatalf("%s: count past the limit: %+v, want refused", key, o)
			}
			if got, err := ps.Reset(ctx, key, rate); err != nil || got.Remaining != 3 {
				t.Fatalf("%s: Reset: %+v, %v", key, got, err)
			}
			if o := plan(false); o.Refused != recovery.StepNone {
				t.Fatalf("%s: count after Reset refused: %+v", key, o)
			}
		}
		// The guard's counters are the store's under scope:key.
		if err := g.SMS(ctx, "p1", ""); err != nil {
			t.Fatal(err)
		}
		if got, err := ps.Peek(ctx, limiter.ScopeStartPhone+":p1", rate); err != nil || got.Remaining != 2 {
			t.Fatalf("Peek of the phone the guard counted: %+v, %v; want 2 remaining", got, err)
		}
	})
}
