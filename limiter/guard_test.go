package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

var ctx = context.Background()

// maxAttempts is the attempts a test flow allows: more than any test makes.
const maxAttempts = 1 << 30

// testGuard is a Guard over the memory store, on a manual clock, with the
// flow it started for each account.
type testGuard struct {
	*limiter.Guard
	clock *clock.Manual
	store *memory.Store
	tb    testing.TB
	flows map[string]string // account → the ID of its flow
	made  int               // flows started, for fresh IDs, clients and phones
}

func newTestGuard(tb testing.TB, cfg limiter.Config) *testGuard {
	tb.Helper()
	return newTestGuardSized(tb, cfg, memory.DefaultMaxEntries)
}

func newTestGuardSized(tb testing.TB, cfg limiter.Config, maxEntries int) *testGuard {
	tb.Helper()
	clk := clock.NewManual(t0)
	store, err := memory.New(maxEntries, clk)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := limiter.New(cfg, store, clk)
	if err != nil {
		tb.Fatal(err)
	}
	return &testGuard{Guard: g, clock: clk, store: store, tb: tb, flows: make(map[string]string)}
}

// newFlow starts a flow for account from ip, its code to phone, through the
// guard as the service does, and makes it the account's flow. It expires
// long after any test ends.
func (g *testGuard) newFlow(ip, account, phone string) string {
	g.tb.Helper()
	g.made++
	now := g.clock.Now()
	f := recovery.Flow{
		ID: fmt.Sprintf("flow-%d", g.made), Account: account, CodeHash: []byte("0123456789abcdef0123456789abcdef"),
		Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: t0.Add(10 * 365 * 24 * time.Hour), ClientIP: ip,
	}
	sms, err := g.StartFlow(ctx, ip, f, phone)
	if err != nil || sms != nil {
		g.tb.Fatalf("starting a flow for %s: sms %v, %v", account, sms, err)
	}
	g.flows[account] = f.ID
	return f.ID
}

// Start checks and counts a start for account from ip, as StartFlow does,
// with a decoy flow that spends no SMS budget, and reports the refusal.
func (g *testGuard) Start(ctx context.Context, ip, account string) error {
	g.made++
	now := g.clock.Now()
	f := recovery.Flow{ID: fmt.Sprintf("start-%d", g.made), Account: account, CodeHash: []byte("0123456789abcdef"),
		Decoy: true, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour), ClientIP: ip}
	_, err := g.StartFlow(ctx, ip, f, "decoy")
	return err
}

// flowOf is the ID of the account's flow, started if it has none from a
// client and to a phone of its own, so that it costs none of the clients
// and phones a test watches.
func (g *testGuard) flowOf(account string) string {
	g.tb.Helper()
	if id, ok := g.flows[account]; ok {
		return id
	}
	n := g.made + 1
	return g.newFlow(fmt.Sprintf("2001:db8:ffff:%x::1", n), account, fmt.Sprintf("+3197%08d", n))
}

// fail is a wrong code for the account's flow from ip: the refusal, or the
// block and lock its guess set.
func (g *testGuard) fail(ip, account string) error {
	g.tb.Helper()
	_, guess, err := g.Verify(ctx, ip, g.flowOf(account), maxAttempts)
	if err != nil {
		return err
	}
	return guess.Set
}

// right is a right code for the account's flow from ip: the guess, as
// Verify counted it, and then Right, which must consume the flow.
func (g *testGuard) right(ip, account string) (recovery.Guess, error) {
	g.tb.Helper()
	id := g.flowOf(account)
	_, guess, err := g.Verify(ctx, ip, id, maxAttempts)
	if err != nil {
		return guess, err
	}
	t := recovery.Token{Hash: []byte("token-" + id), Account: account, FlowID: id, ExpiresAt: g.clock.Now().Add(time.Hour)}
	won, err := g.Right(ctx, ip, recovery.Flow{ID: id}, t)
	if err != nil {
		return guess, err
	}
	if !won {
		return guess, errors.New("right code: the flow was not consumed")
	}
	delete(g.flows, account)
	return guess, nil
}

// wantDenial fails unless err is a Denial for reason and scope that says to
// retry after retry.
func wantDenial(t *testing.T, err, reason error, scope string, retry time.Duration) *recovery.Denial {
	t.Helper()
	var d *recovery.Denial
	if !errors.As(err, &d) {
		t.Fatalf("got %v, want a %s denial", err, scope)
	}
	if !errors.Is(err, reason) || d.Scope != scope || d.RetryAfter != retry {
		t.Fatalf("got %v (scope %s, retry after %s), want %v (scope %s, retry after %s)", err, d.Scope, d.RetryAfter, reason, scope, retry)
	}
	return d
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v, want it allowed", what, err)
	}
}

func TestDefaultConfigMatchesSpec(t *testing.T) {
	t.Parallel()
	want := limiter.Config{
		StartIP:      limiter.Rate{Events: 10, Window: time.Hour},
		StartAccount: limiter.Rate{Events: 3, Window: time.Hour},
		StartPhone:   limiter.Rate{Events: 3, Window: time.Hour},
		VerifyIP:     limiter.Rate{Events: 50, Window: time.Hour},
		SMSGlobal:    limiter.Rate{Events: 1000, Window: time.Hour},
		Lockout:      limiter.Threshold{Failures: 5, Window: time.Hour, Duration: 30 * time.Minute},
		IPBlock:      limiter.Threshold{Failures: 20, Window: time.Hour, Duration: time.Hour},

		MaxLockDuration: 24 * time.Hour,
		PermanentAfter:  100, // NIST SP 800-63B
		Breaker: limiter.Breaker{Window: 24 * time.Hour, MinSent: 100, MaxEntered: 5,
			Block: time.Hour, LaterBlock: 24 * time.Hour, HeldAfter: 3},
		Shares: limiter.Shares{Network: 10}, // one /24 or /48 spends at most 100 codes an hour
	}
	if got := limiter.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
	if err := want.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*limiter.Config)
		want string
	}{
		{"start_ip events", func(c *limiter.Config) { c.StartIP.Events = 0 }, "start_ip: events must be at least 1, got 0"},
		{"start_account window", func(c *limiter.Config) { c.StartAccount.Window = 0 }, "start_account: window must be positive"},
		{"start_phone events", func(c *limiter.Config) { c.StartPhone.Events = -3 }, "start_phone: events must be at least 1, got -3"},
		{"verify_ip window", func(c *limiter.Config) { c.VerifyIP.Window = -time.Second }, "verify_ip: window must be positive, got -1s"},
		{"sms_global events", func(c *limiter.Config) { c.SMSGlobal.Events = 0 }, "sms_global: events must be at least 1"},
		{"lockout failures", func(c *limiter.Config) { c.Lockout.Failures = 0 }, "lockout: failures must be at least 1, got 0"},
		{"lockout window", func(c *limiter.Config) { c.Lockout.Window = 0 }, "lockout: window must be positive"},
		{"ip_block duration", func(c *limiter.Config) { c.IPBlock.Duration = 0 }, "ip_block: duration must be positive, got 0s"},
		{"longest lock", func(c *limiter.Config) { c.MaxLockDuration = 0 }, "lockout: the longest lock must be positive"},
		{"permanent after", func(c *limiter.Config) { c.PermanentAfter = 0 }, "lockout: wrong codes before a lasting lock must be at least 1"},
		{"zero config names every scope", func(c *limiter.Config) { *c = limiter.Config{} }, "ip_block: duration must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := limiter.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to say %q", err, tc.want)
			}
			if _, err := limiter.New(cfg, brokenStore{}, clock.NewManual(t0)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestNewRequiresCollaborators(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	for _, tc := range []struct {
		name  string
		build func() (*limiter.Guard, error)
	}{
		{"store", func() (*limiter.Guard, error) { return limiter.New(limiter.DefaultConfig(), nil, clk) }},
		{"clock", func() (*limiter.Guard, error) { return limiter.New(limiter.DefaultConfig(), brokenStore{}, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if g, err := tc.build(); err == nil {
				t.Fatalf("New without %s = %v, want an error", tc.name, g)
			}
		})
	}
}

// TestRateScopes walks each limit of the default configuration over its
// window: the last event allowed, the first refused, the last refused just
// before the window ends and the first allowed after it.
func TestRateScopes(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	for _, tc := range []struct {
		scope string
		rate  limiter.Rate
		call  func(g *testGuard, i int) error // event i of one client, account or phone
	}{
		{limiter.ScopeStartIP, cfg.StartIP, func(g *testGuard, i int) error {
			return g.Start(ctx, "192.0.2.1", fmt.Sprintf("user%d@example.com", i))
		}},
		{limiter.ScopeStartAccount, cfg.StartAccount, func(g *testGuard, i int) error {
			return g.Start(ctx, fmt.Sprintf("192.0.2.%d", i+1), "alice@example.com")
		}},
		{limiter.ScopeStartPhone, cfg.StartPhone, func(g *testGuard, i int) error {
			return g.SMS(ctx, "+31612345678", "")
		}},
		{limiter.ScopeVerifyIP, cfg.VerifyIP, func(g *testGuard, i int) error {
			// A flow that is not there: the client is counted all the same.
			_, _, err := g.Verify(ctx, "192.0.2.1", fmt.Sprintf("gone-%d", i), maxAttempts)
			if errors.Is(err, recovery.ErrNotFound) {
				return nil
			}
			return err
		}},
		{limiter.ScopeSMSGlobal, cfg.SMSGlobal, func(g *testGuard, i int) error {
			return g.SMS(ctx, fmt.Sprintf("+3161%07d", i), "")
		}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			t.Parallel()
			g := newTestGuard(t, cfg)
			n := int(tc.rate.Events)
			wantAllowed(t, "first event", tc.call(g, 0))
			g.clock.Advance(10 * time.Minute)
			for i := 1; i < n; i++ {
				wantAllowed(t, fmt.Sprintf("event %d of %d", i+1, n), tc.call(g, i))
			}
			d := wantDenial(t, tc.call(g, n), recovery.ErrRateLimited, tc.scope, tc.rate.Window-10*time.Minute)
			if d.Limit != tc.rate.Events || d.Remaining != 0 || !d.Reset.Equal(t0.Add(tc.rate.Window)) {
				t.Fatalf("denial %+v, want limit %d, remaining 0, reset %s", d, tc.rate.Events, t0.Add(tc.rate.Window))
			}
			g.clock.Advance(tc.rate.Window - 10*time.Minute - time.Second)
			wantDenial(t, tc.call(g, n+1), recovery.ErrRateLimited, tc.scope, time.Second)
			g.clock.Advance(time.Second)
			wantAllowed(t, "first event of the next window", tc.call(g, n+2))
		})
	}
}

func TestStartPeeksSMSBudget(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.SMSGlobal = limiter.Rate{Events: 2, Window: time.Hour}
	g := newTestGuard(t, cfg)
	for i := range 5 {
		wantAllowed(t, "start", g.Start(ctx, fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("user%d", i)))
	}
	wantAllowed(t, "first sms", g.SMS(ctx, "+31611111111", ""))
	wantAllowed(t, "second sms", g.SMS(ctx, "+31622222222", ""))
	g.clock.Advance(15 * time.Minute)
	wantDenial(t, g.Start(ctx, "198.51.100.1", "fresh"), recovery.ErrRateLimited, limiter.ScopeSMSGlobal, 45*time.Minute)
	wantDenial(t, g.Start(ctx, "198.51.100.1", "fresh"), recovery.ErrRateLimited, limiter.ScopeSMSGlobal, 45*time.Minute)
	// The refusal came before the client's counters: it still has all its starts.
	g.clock.Advance(45 * time.Minute)
	for i := range int(cfg.StartIP.Events) {
		wantAllowed(t, "start after the budget refilled", g.Start(ctx, "198.51.100.1", fmt.Sprintf("u%d", i)))
	}
}

func TestRefusedPhoneDoesNotSpendBudget(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.SMSGlobal = limiter.Rate{Events: 5, Window: time.Hour}
	g := newTestGuard(t, cfg)
	for i := range 10 {
		err := g.SMS(ctx, "+31612345678", "")
		if i < 3 {
			wantAllowed(t, "sms", err)
		} else {
			wantDenial(t, err, recovery.ErrRateLimited, limiter.ScopeStartPhone, time.Hour)
		}
	}
	wantAllowed(t, "fourth sms of the budget", g.SMS(ctx, "+31600000001", ""))
	wantAllowed(t, "fifth sms of the budget", g.SMS(ctx, "+31600000002", ""))
	wantDenial(t, g.SMS(ctx, "+31600000003", ""), recovery.ErrRateLimited, limiter.ScopeSMSGlobal, time.Hour)
}

// TestFlowCountsItsCodeSoftly: the code of a new or resent flow is counted
// against its phone and then the global budget, in the step that stores
// it, and a refusal drops the code, never the flow; a refused phone spends
// no budget, and a decoy's flow peeks the counters without spending them.
// Once the budget is spent, every start and resend is refused.
func TestFlowCountsItsCodeSoftly(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.SMSGlobal = limiter.Rate{Events: 5, Window: time.Hour}
	cfg.Shares.Network = 0 // one client spends the whole budget
	g := newTestGuard(t, cfg)
	const phone = "+31612345678"
	start := func(i int, phone string, decoy bool) (sms, err error) {
		t.Helper()
		now := g.clock.Now()
		f := recovery.Flow{ID: fmt.Sprintf("soft-%d", i), Account: fmt.Sprintf("user%d", i), CodeHash: []byte("0123456789abcdef"),
			Sends: 1, Decoy: decoy, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour), ClientIP: "192.0.2.1"}
		sms, err = g.StartFlow(ctx, "192.0.2.1", f, phone)
		if _, ferr := g.store.Flow(ctx, f.ID); (err == nil) != (ferr == nil) {
			t.Fatalf("flow %d: start %v, stored %v", i, err, ferr)
		}
		return sms, err
	}
	code := func(i int, phone string, decoy bool) error {
		t.Helper()
		sms, err := start(i, phone, decoy)
		if err != nil {
			t.Fatalf("start %d: %v, want the flow stored", i, err)
		}
		return sms
	}
	for i := range 3 {
		wantAllowed(t, "code to the phone", code(i, phone, false))
	}
	wantAllowed(t, "a decoy's code", code(3, "+31699999999", true))
	wantDenial(t, code(4, phone, false), recovery.ErrRateLimited, limiter.ScopeStartPhone, time.Hour)
	wantDenial(t, code(5, phone, true), recovery.ErrRateLimited, limiter.ScopeStartPhone, time.Hour)

	// Neither the refused codes nor the decoy spent the budget: 2 left.
	r := recovery.ResendOp{ID: "soft-0", CodeHash: []byte("fedcba9876543210"), Now: g.clock.Now(), Interval: time.Minute,
		ExpiresAt: g.clock.Now().Add(time.Hour), MaxAttempts: 5}
	if _, sms, err := g.ResendFlow(ctx, "192.0.2.2", r, "+31600000001", false); err == nil || sms != nil {
		t.Fatalf("resend inside the interval: sms %v, %v; want too early", sms, err)
	} else if !errors.Is(err, recovery.ErrTooEarly) {
		t.Fatalf("resend inside the interval: %v, want %v", err, recovery.ErrTooEarly)
	}
	g.clock.Advance(time.Minute)
	r.Now = g.clock.Now()
	f, sms, err := g.ResendFlow(ctx, "192.0.2.2", r, "+31600000001", false)
	if err != nil || sms != nil || string(f.CodeHash) != "fedcba9876543210" {
		t.Fatalf("resend = %+v, sms %v, %v; want the new code sent", f, sms, err)
	}
	wantAllowed(t, "fifth code of the budget", code(6, "+31600000002", false))
	// The budget spent: a start, a decoy's too, and a resend are refused.
	_, err = start(7, "+31600000003", true)
	wantDenial(t, err, recovery.ErrRateLimited, limiter.ScopeSMSGlobal, 59*time.Minute)
	_, err = start(8, "+31600000004", false)
	wantDenial(t, err, recovery.ErrRateLimited, limiter.ScopeSMSGlobal, 59*time.Minute)
	r.ID, r.Now = "soft-1", g.clock.Now()
	_, _, err = g.ResendFlow(ctx, "192.0.2.2", r, "+31600000004", false)
	wantDenial(t, err, recovery.ErrRateLimited, limiter.ScopeSMSGlobal, 59*time.Minute)
}

func TestStartRefusedByIPDoesNotCountAccount(t *testing.T) {
	t.Parallel()
	g := newTestGuard(t, limiter.DefaultConfig())
	for i := range 10 {
		wantAllowed(t, "start", g.Start(ctx, "192.0.2.1", fmt.Sprintf("user%d", i)))
	}
	for range 5 {
		wantDenial(t, g.Start(ctx, "192.0.2.1", "victim"), recovery.ErrRateLimited, limiter.ScopeStartIP, time.Hour)
	}
	for i := range 3 {
		wantAllowed(t, "victim's own start", g.Start(ctx, fmt.Sprintf("198.51.100.%d", i+1), "victim"))
	}
	wantDenial(t, g.Start(ctx, "198.51.100.9", "victim"), recovery.ErrRateLimited, limiter.ScopeStartAccount, time.Hour)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	g := newTestGuard(t, cfg)
	const ip, account = "192.0.2.1", "alice@example.com"
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, fmt.Sprintf("failure %d", i), g.fail(ip, account))
	}
	err := g.fail(ip, account)
	d := wantDenial(t, err, recovery.ErrLocked, limiter.ScopeLockout, cfg.Lockout.Duration)
	if _, ok := err.(*recovery.Denial); !ok {
		t.Fatalf("got a %T, want the *recovery.Denial itself when one threshold is reached", err)
	}
	if !d.Reset.Equal(t0.Add(cfg.Lockout.Duration)) {
		t.Fatalf("lock ends %s, want %s", d.Reset, t0.Add(cfg.Lockout.Duration))
	}

	g.clock.Advance(time.Minute)
	left := cfg.Lockout.Duration - time.Minute
	wantDenial(t, g.Start(ctx, "198.51.100.7", account), recovery.ErrLocked, limiter.ScopeLockout, left)
	wantDenial(t, g.Start(ctx, "198.51.100.7", account), recovery.ErrLocked, limiter.ScopeLockout, left)
	wantDenial(t, g.fail("198.51.100.7", account), recovery.ErrLocked, limiter.ScopeLockout, left)
	wantAllowed(t, "another account from the same client", g.Start(ctx, ip, "bob@example.com"))

	g.clock.Advance(left - time.Second)
	wantDenial(t, g.fail(ip, account), recovery.ErrLocked, limiter.ScopeLockout, time.Second)
	g.clock.Advance(time.Second)
	wantAllowed(t, "start once the lock ran out", g.Start(ctx, ip, account))

	// The lock closed its window: the next lock takes as many failures
	// again, and lasts twice as long.
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, fmt.Sprintf("failure %d after the lock", i), g.fail("198.51.100.8", account))
	}
	wantDenial(t, g.fail("198.51.100.8", account), recovery.ErrLocked, limiter.ScopeLockout, 2*cfg.Lockout.Duration)
}

func TestIPBlock(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	for _, tc := range []struct {
		name    string
		ip      func(i int) string // the client's address at failure i
		sibling string             // another address of the same client key
		other   string             // an address of another client
	}{
		{"ipv4", func(int) string { return "192.0.2.1" }, "192.0.2.1", "192.0.2.2"},
		{"ipv6 /64", func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }, "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGuard(t, cfg)
			fresh := g.flowOf("fresh")
			n := int(cfg.IPBlock.Failures)
			for i := range n - 1 {
				wantAllowed(t, fmt.Sprintf("failure %d", i+1), g.fail(tc.ip(i), fmt.Sprintf("user%d", i)))
			}
			wantDenial(t, g.fail(tc.ip(n-1), "last"), recovery.ErrBlocked, limiter.ScopeIPBlock, cfg.IPBlock.Duration)

			g.clock.Advance(10 * time.Minute)
			left := cfg.IPBlock.Duration - 10*time.Minute
			wantDenial(t, g.Start(ctx, tc.sibling, "fresh"), recovery.ErrBlocked, limiter.ScopeIPBlock, left)
			_, _, err := g.Verify(ctx, tc.sibling, fresh, maxAttempts)
			wantDenial(t, err, recovery.ErrBlocked, limiter.ScopeIPBlock, left)
			_, _, err = g.Verify(ctx, tc.sibling, "gone", maxAttempts)
			wantDenial(t, err, recovery.ErrBlocked, limiter.ScopeIPBlock, left)
			wantAllowed(t, "another client", g.Start(ctx, tc.other, "fresh"))

			g.clock.Advance(left)
			wantAllowed(t, "start once the block ran out", g.Start(ctx, tc.sibling, "fresh"))
		})
	}
}

func TestFailureReachingBothThresholds(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.Lockout.Failures, cfg.IPBlock.Failures = 2, 2
	g := newTestGuard(t, cfg)
	wantAllowed(t, "first failure", g.fail("192.0.2.1", "alice"))
	err := g.fail("192.0.2.1", "alice")
	wantDenial(t, err, recovery.ErrBlocked, limiter.ScopeIPBlock, cfg.IPBlock.Duration)
	if !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("got %v, want the account lock reported too", err)
	}
	for _, kind := range []string{recovery.KindAccount, recovery.KindIP} {
		if locks, _ := g.Locks(ctx, kind); len(locks) != 1 {
			t.Errorf("%s locks: %v, want one", kind, locks)
		}
	}
}

func TestSuccessLeavesOthersCountersAlone(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	g := newTestGuard(t, cfg)
	const nat = "192.0.2.1" // Alice and Mallory share it
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, "mallory's failure", g.fail(nat, "bob"))
	}
	// Alice starts and gives the right code.
	g.newFlow(nat, "alice", "+31611111111")
	if guess, err := g.right(nat, "alice"); err != nil || guess.Set != nil {
		t.Fatalf("alice's right code: %+v, %v", guess, err)
	}
	// Bob's count was not reset by Alice's success, and Alice is not locked.
	wantDenial(t, g.fail(nat, "bob"), recovery.ErrLocked, limiter.ScopeLockout, cfg.Lockout.Duration)
	wantAllowed(t, "alice's next start", g.Start(ctx, nat, "alice"))
	wantAllowed(t, "alice's next code", g.fail(nat, "alice"))
}

func TestLocksAndLift(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.Lockout.Failures, cfg.IPBlock.Failures = 3, 3

	t.Run("account", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail(fmt.Sprintf("192.0.2.%d", i+1), "alice")
		}
		locks, err := g.Locks(ctx, recovery.KindAccount)
		if err != nil {
			t.Fatal(err)
		}
		want := recovery.Lock{Kind: recovery.KindAccount, Key: "alice", Since: t0, Until: t0.Add(cfg.Lockout.Duration), Strikes: 3, Locks: 1, Reason: recovery.ReasonWrongCodes}
		if len(locks) != 1 || locks[0] != want {
			t.Fatalf("Locks = %+v, want [%+v]", locks, want)
		}
		if lifted, err := g.Lift(ctx, recovery.KindAccount, "alice"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
		wantAllowed(t, "start after lift", g.Start(ctx, "192.0.2.9", "alice"))
		// A fresh set of tries: two failures pass, the third locks again.
		for i := range 2 {
			wantAllowed(t, "failure after lift", g.fail(fmt.Sprintf("198.51.100.%d", i+1), "alice"))
		}
		wantDenial(t, g.fail("198.51.100.3", "alice"), recovery.ErrLocked, limiter.ScopeLockout, cfg.Lockout.Duration)
	})

	t.Run("ipv6 client by any address of its /64", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail("2001:db8:a:b::5", fmt.Sprintf("user%d", i))
		}
		locks, err := g.Locks(ctx, recovery.KindIP)
		if err != nil {
			t.Fatal(err)
		}
		if len(locks) != 1 || locks[0].Key != "2001:db8:a:b::/64" || locks[0].Reason != recovery.ReasonWrongCodes {
			t.Fatalf("Locks = %+v, want the block of 2001:db8:a:b::/64", locks)
		}
		if lifted, err := g.Lift(ctx, recovery.KindIP, "2001:db8:a:b::9"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
		wantAllowed(t, "start after lift", g.Start(ctx, "2001:db8:a:b::5", "x"))
		for i := range 2 {
			wantAllowed(t, "failure after lift", g.fail("2001:db8:a:b::5", fmt.Sprintf("other%d", i)))
		}
	})

	t.Run("by the key Locks listed", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail("2001:db8:a:b::5", fmt.Sprintf("user%d", i))
		}
		if lifted, err := g.Lift(ctx, recovery.KindIP, "2001:db8:a:b::/64"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
	})

	t.Run("nothing to lift", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if lifted, err := g.Lift(ctx, recovery.KindAccount, "nobody"); err != nil || lifted {
			t.Fatalf("Lift = %v, %v, want false", lifted, err)
		}
	})

	t.Run("unknown kind", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if _, err := g.Lift(ctx, "mailbox", "alice"); err == nil {
			t.Fatal("Lift of an unknown kind succeeded")
		}
		if _, err := g.Locks(ctx, "mailbox"); err == nil {
			t.Fatal("Locks of an unknown kind succeeded")
		}
	})
}

// TestImposedLock: a lock support imposes refuses every route of the
// account, like a lockout, for its time or until lifted; it is listed as
// support's, never shortens a lock in force, gives no fresh tries, and is
// new only once.
func TestImposedLock(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	const ip, account = "192.0.2.1", "alice@example.com"

	t.Run("for a time", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		g.flowOf(account)
		l, set, err := g.Impose(ctx, account, 2*time.Hour)
		want := recovery.Lock{Kind: recovery.KindAccount, Key: account, Since: t0, Until: t0.Add(2 * time.Hour), Reason: recovery.ReasonSupport}
		if err != nil || !set || l != want {
			t.Fatalf("Impose = %+v, %v, %v; want %+v, set", l, set, err, want)
		}
		if l, set, err := g.Impose(ctx, account, 2*time.Hour); err != nil || set || l != want {
			t.Fatalf("Impose again = %+v, %v, %v; want the same lock, not new", l, set, err)
		}
		wantDenial(t, g.Start(ctx, ip, account), recovery.ErrLocked, limiter.ScopeLockout, 2*time.Hour)
		wantDenial(t, g.fail(ip, account), recovery.ErrLocked, limiter.ScopeLockout, 2*time.Hour)
		wantAllowed(t, "another account", g.Start(ctx, ip, "bob@example.com"))
		locks, err := g.Locks(ctx, recovery.KindAccount)
		if err != nil || len(locks) != 1 || locks[0] != want {
			t.Fatalf("Locks = %+v, %v; want [%+v]", locks, err, want)
		}
		g.clock.Advance(2 * time.Hour)
		wantAllowed(t, "start once the lock ran out", g.Start(ctx, ip, account))
	})

	t.Run("until lifted", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		g.flowOf(account)
		if _, set, err := g.Impose(ctx, account, 0); err != nil || !set {
			t.Fatalf("Impose = %v, %v", set, err)
		}
		g.clock.Advance(365 * 24 * time.Hour)
		d := wantDenial(t, g.fail(ip, account), recovery.ErrLocked, limiter.ScopeLockout, cfg.MaxLockDuration)
		if !d.Permanent {
			t.Errorf("denial %+v, want it to say support lifts it", d)
		}
		if lifted, err := g.Lift(ctx, recovery.KindAccount, account); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v", lifted, err)
		}
		wantAllowed(t, "a code after the lift", g.fail(ip, account))
	})

	t.Run("never shortens a lock in force, keeps the strikes", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for range cfg.Lockout.Failures {
			_ = g.fail(ip, account)
		}
		lockout, err := g.Locks(ctx, recovery.KindAccount)
		if err != nil || len(lockout) != 1 {
			t.Fatalf("Locks = %+v, %v", lockout, err)
		}
		l, set, err := g.Impose(ctx, account, time.Minute)
		if err != nil || set {
			t.Fatalf("Impose on a locked account = %v, %v; want no new lock", set, err)
		}
		if !l.Until.Equal(lockout[0].Until) || !l.Since.Equal(t0) || l.Strikes != cfg.Lockout.Failures || l.Locks != 1 || l.Reason != recovery.ReasonSupport {
			t.Fatalf("Impose for 1m on a 30m lockout = %+v, want the lockout's end, strikes and count, held by support", l)
		}
		if l, _, _ := g.Impose(ctx, account, 0); !l.Permanent {
			t.Fatalf("Impose until lifted = %+v, want permanent", l)
		}
		if l, _, _ := g.Impose(ctx, account, time.Hour); !l.Permanent {
			t.Fatalf("Impose for 1h on a lasting lock = %+v, want it to stay permanent", l)
		}
	})

	t.Run("gives no fresh tries", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for range cfg.Lockout.Failures - 1 {
			wantAllowed(t, "a wrong code", g.fail(ip, account))
		}
		if _, _, err := g.Impose(ctx, account, time.Minute); err != nil {
			t.Fatal(err)
		}
		g.clock.Advance(time.Minute)
		// The window of the wrong codes is still open: one more locks.
		wantDenial(t, g.fail(ip, account), recovery.ErrLocked, limiter.ScopeLockout, cfg.Lockout.Duration)
		locks, err := g.Locks(ctx, recovery.KindAccount)
		if err != nil || len(locks) != 1 || locks[0].Reason != recovery.ReasonWrongCodes || locks[0].Locks != 1 {
			t.Fatalf("Locks = %+v, %v; want the lockout, the first of its run, set by wrong codes", locks, err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if _, _, err := g.Impose(ctx, account, -time.Second); err == nil {
			t.Error("Impose for a negative time succeeded")
		}
		broken, err := limiter.New(cfg, brokenStore{}, clock.NewManual(t0))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := broken.Impose(ctx, account, 0); !errors.Is(err, errDown) {
			t.Errorf("Impose on a broken store = %v, want %v", err, errDown)
		}
	})
}

// TestImposeRecord is Impose, the step every store takes, on records.
func TestImposeRecord(t *testing.T) {
	t.Parallel()
	now := t0
	type (
		Lock   = recovery.Lock
		Record = recovery.Record
	)
	support := recovery.ReasonSupport
	tests := []struct {
		name    string
		r       Record
		d       time.Duration
		want    Record
		wantSet bool
	}{
		{"no record", Record{}, time.Hour,
			Record{Lock: Lock{Since: now, Until: now.Add(time.Hour), Reason: support}}, true},
		{"until lifted", Record{}, 0,
			Record{Lock: Lock{Since: now, Permanent: true, Reason: support}}, true},
		{"strikes and window stay", Record{Lock: Lock{Strikes: 4, Locks: 2, Since: now.Add(-time.Hour), Until: now.Add(-time.Minute)}, InWindow: 3, WindowEnd: now.Add(time.Minute)}, time.Hour,
			Record{Lock: Lock{Strikes: 4, Locks: 2, Since: now, Until: now.Add(time.Hour), Reason: support}, InWindow: 3, WindowEnd: now.Add(time.Minute)}, true},
		{"a later end stays", Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(2 * time.Hour), Locks: 1}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(2 * time.Hour), Locks: 1, Reason: support}}, false},
		{"an earlier end is pushed back", Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(time.Minute), Locks: 1}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(time.Hour), Locks: 1, Reason: support}}, false},
		{"a lasting lock stays", Record{Lock: Lock{Since: now.Add(-time.Minute), Permanent: true, Strikes: 100}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Permanent: true, Strikes: 100, Reason: support}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.r
			if set := limiter.Impose(&r, now, tt.d); set != tt.wantSet || r != tt.want {
				t.Errorf("Impose = %v, %+v; want %v, %+v", set, r, tt.wantSet, tt.want)
			}
		})
	}
	// A lock that wrong codes set later is theirs, not support's.
	r := Record{}
	limiter.Impose(&r, now, time.Minute)
	p := recovery.Policy{Threshold: 1, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour, Run: true}
	if st := limiter.Strike(p, &r, now.Add(time.Minute)); !st.Set || st.Lock.Reason != "" {
		t.Errorf("a strike after an imposed lock = %+v, want a lock set by wrong codes", st)
	}
}

func TestStartIPGroupsIPv6By64(t *testing.T) {
	t.Parallel()
	g := newTestGuard(t, limiter.DefaultConfig())
	for i := range 10 {
		wantAllowed(t, "start", g.Start(ctx, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("u%d", i)))
	}
	wantDenial(t, g.Start(ctx, "2001:db8:1:2:ffff::1", "u10"), recovery.ErrRateLimited, limiter.ScopeStartIP, time.Hour)
	wantDenial(t, g.Start(ctx, "[2001:db8:1:2::99]:443", "u11"), recovery.ErrRateLimited, limiter.ScopeStartIP, time.Hour)
	wantAllowed(t, "start from the next /64", g.Start(ctx, "2001:db8:1:3::1", "u12"))
}

// TestFailsClosed: when the store fails, every request fails with its
// error, never allowed and never told as a limit.
func TestFailsClosed(t *testing.T) {
	t.Parallel()
	g, err := limiter.New(limiter.DefaultConfig(), brokenStore{}, clock.NewManual(t0))
	if err != nil {
		t.Fatal(err)
	}
	flow := recovery.Flow{ID: "f", Account: "a", CodeHash: []byte("h"), ExpiresAt: t0.Add(time.Hour), ClientIP: "192.0.2.1"}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"start", func() error { _, err := g.StartFlow(ctx, "192.0.2.1", flow, "+31612345678"); return err }},
		{"resend", func() error {
			_, _, err := g.ResendFlow(ctx, "192.0.2.1", recovery.ResendOp{ID: "f", Now: t0, MaxAttempts: 5}, "+31612345678", false)
			return err
		}},
		{"sms", func() error { return g.SMS(ctx, "+31612345678", "") }},
		{"verify", func() error { _, _, err := g.Verify(ctx, "192.0.2.1", "f", 5); return err }},
		{"right", func() error {
			_, err := g.Right(ctx, "192.0.2.1", recovery.Flow{ID: "f"}, recovery.Token{})
			return err
		}},
		{"locks listing", func() error { _, err := g.Locks(ctx, recovery.KindIP); return err }},
		{"lift", func() error { _, err := g.Lift(ctx, recovery.KindIP, "192.0.2.1"); return err }},
		{"impose", func() error { _, _, err := g.Impose(ctx, "a", time.Hour); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call()
			var d *recovery.Denial
			if !errors.Is(err, errDown) || errors.As(err, &d) {
				t.Fatalf("got %v, want the backend's error and no denial", err)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"192.0.2.1:8080", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:443", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:DB8:1:2::1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"fe80::1%eth1", "fe80::/64"},
		{"::1", "::/64"},
		{"2001:db8:1:2::/64", "2001:db8:1:2::/64"},
		{"not an ip", "not an ip"},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got := limiter.ClientKey(tc.in)
			if got != tc.want {
				t.Fatalf("ClientKey(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := limiter.ClientKey(got); again != got {
				t.Fatalf("ClientKey(%q) = %q, want it unchanged", got, again)
			}
		})
	}
}

func TestScopesNeverShareCounters(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	cfg.StartIP.Events, cfg.VerifyIP.Events, cfg.StartAccount.Events, cfg.StartPhone.Events, cfg.SMSGlobal.Events = 1, 1, 1, 1, 1
	g := newTestGuard(t, cfg)
	// One string used as a client, an account and a phone in every scope:
	// each scope allows its one event. newFlow fails the test unless the
	// start (start_ip, start_account, sms_global peeked) and its code
	// (start_phone, sms_global) are allowed.
	const s = "192.0.2.1"
	g.newFlow(s, s, s)
	wantAllowed(t, "a wrong code (verify_ip, lockout, ip_block)", g.fail(s, s))
}
