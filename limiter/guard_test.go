package limiter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

type testGuard struct {
	*Guard
	clock *clock.Manual
	locks *memLocks
}

func newTestGuard(t testing.TB, cfg Config) testGuard {
	t.Helper()
	clk := clock.NewManual(t0)
	store, err := NewLRUStore(DefaultMaxKeys, clk)
	if err != nil {
		t.Fatal(err)
	}
	locks := newMemLocks(clk)
	g, err := New(cfg, store, locks, clk)
	if err != nil {
		t.Fatal(err)
	}
	return testGuard{Guard: g, clock: clk, locks: locks}
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
		t.Fatalf("got %v (scope %s), want %v (scope %s, retry after %s)", err, d.Scope, reason, scope, retry)
	}
	return d
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v, want it allowed", what, err)
	}
}

var ctx = context.Background()

// fail is a wrong code: a guess, and what it set.
func (g testGuard) fail(ctx context.Context, ip, account string) error {
	guess, err := g.Guess(ctx, ip, account)
	if err != nil {
		return err
	}
	return guess.Set
}

func TestDefaultConfigMatchesSpec(t *testing.T) {
	t.Parallel()
	want := Config{
		StartIP:      Rate{10, time.Hour},
		StartAccount: Rate{3, time.Hour},
		StartPhone:   Rate{3, time.Hour},
		VerifyIP:     Rate{50, time.Hour},
		SMSGlobal:    Rate{1000, time.Hour},
		Lockout:      Threshold{5, time.Hour, 30 * time.Minute},
		IPBlock:      Threshold{20, time.Hour, time.Hour},

		MaxLockDuration: 24 * time.Hour,
		PermanentAfter:  100, // NIST SP 800-63B
	}
	if got := DefaultConfig(); got != want {
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
		edit func(*Config)
		want string
	}{
		{"start_ip events", func(c *Config) { c.StartIP.Events = 0 }, "start_ip: events must be at least 1, got 0"},
		{"start_account window", func(c *Config) { c.StartAccount.Window = 0 }, "start_account: window must be positive"},
		{"start_phone events", func(c *Config) { c.StartPhone.Events = -3 }, "start_phone: events must be at least 1, got -3"},
		{"verify_ip window", func(c *Config) { c.VerifyIP.Window = -time.Second }, "verify_ip: window must be positive, got -1s"},
		{"sms_global events", func(c *Config) { c.SMSGlobal.Events = 0 }, "sms_global: events must be at least 1"},
		{"lockout failures", func(c *Config) { c.Lockout.Failures = 0 }, "lockout: failures must be at least 1, got 0"},
		{"lockout window", func(c *Config) { c.Lockout.Window = 0 }, "lockout: window must be positive"},
		{"ip_block duration", func(c *Config) { c.IPBlock.Duration = 0 }, "ip_block: duration must be positive, got 0s"},
		{"zero config names every scope", func(c *Config) { *c = Config{} }, "ip_block: duration must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to say %q", err, tc.want)
			}
			if _, err := New(cfg, brokenStore{}, brokenLocks{}, clock.NewManual(t0)); err == nil || !strings.Contains(err.Error(), tc.want) {
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
		build func() (*Guard, error)
	}{
		{"counters", func() (*Guard, error) { return New(DefaultConfig(), nil, brokenLocks{}, clk) }},
		{"locks", func() (*Guard, error) { return New(DefaultConfig(), brokenStore{}, nil, clk) }},
		{"clock", func() (*Guard, error) { return New(DefaultConfig(), brokenStore{}, brokenLocks{}, nil) }},
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
	cfg := DefaultConfig()
	for _, tc := range []struct {
		scope string
		rate  Rate
		call  func(g *Guard, i int) error // event i of one client, account or phone
	}{
		{ScopeStartIP, cfg.StartIP, func(g *Guard, i int) error {
			return g.Start(ctx, "192.0.2.1", fmt.Sprintf("user%d@example.com", i))
		}},
		{ScopeStartAccount, cfg.StartAccount, func(g *Guard, i int) error {
			return g.Start(ctx, fmt.Sprintf("192.0.2.%d", i+1), "alice@example.com")
		}},
		{ScopeStartPhone, cfg.StartPhone, func(g *Guard, i int) error {
			return g.SMS(ctx, "+31612345678")
		}},
		{ScopeVerifyIP, cfg.VerifyIP, func(g *Guard, i int) error {
			return g.Verify(ctx, "192.0.2.1", fmt.Sprintf("user%d@example.com", i))
		}},
		{ScopeSMSGlobal, cfg.SMSGlobal, func(g *Guard, i int) error {
			return g.SMS(ctx, fmt.Sprintf("+3161%07d", i))
		}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			t.Parallel()
			g := newTestGuard(t, cfg)
			n := int(tc.rate.Events)
			wantAllowed(t, "first event", tc.call(g.Guard, 0))
			g.clock.Advance(10 * time.Minute)
			for i := 1; i < n; i++ {
				wantAllowed(t, fmt.Sprintf("event %d of %d", i+1, n), tc.call(g.Guard, i))
			}
			d := wantDenial(t, tc.call(g.Guard, n), recovery.ErrRateLimited, tc.scope, tc.rate.Window-10*time.Minute)
			if d.Limit != tc.rate.Events || d.Remaining != 0 || !d.Reset.Equal(t0.Add(tc.rate.Window)) {
				t.Fatalf("denial %+v, want limit %d, remaining 0, reset %s", d, tc.rate.Events, t0.Add(tc.rate.Window))
			}
			g.clock.Advance(tc.rate.Window - 10*time.Minute - time.Second)
			wantDenial(t, tc.call(g.Guard, n+1), recovery.ErrRateLimited, tc.scope, time.Second)
			g.clock.Advance(time.Second)
			wantAllowed(t, "first event of the next window", tc.call(g.Guard, n+2))
		})
	}
}

func TestStartPeeksSMSBudget(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.SMSGlobal = Rate{Events: 2, Window: time.Hour}
	g := newTestGuard(t, cfg)
	for i := range 5 {
		wantAllowed(t, "start", g.Start(ctx, fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("user%d", i)))
	}
	wantAllowed(t, "first sms", g.SMS(ctx, "+31611111111"))
	wantAllowed(t, "second sms", g.SMS(ctx, "+31622222222"))
	g.clock.Advance(15 * time.Minute)
	wantDenial(t, g.Start(ctx, "198.51.100.1", "fresh"), recovery.ErrRateLimited, ScopeSMSGlobal, 45*time.Minute)
	// The refusal came before the client's counters: it still has all its starts.
	g.clock.Advance(45 * time.Minute)
	for i := range int(cfg.StartIP.Events) {
		wantAllowed(t, "start after the budget refilled", g.Start(ctx, "198.51.100.1", fmt.Sprintf("u%d", i)))
	}
}

func TestRefusedPhoneDoesNotSpendBudget(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.SMSGlobal = Rate{Events: 5, Window: time.Hour}
	g := newTestGuard(t, cfg)
	for i := range 10 {
		err := g.SMS(ctx, "+31612345678")
		if i < 3 {
			wantAllowed(t, "sms", err)
		} else {
			wantDenial(t, err, recovery.ErrRateLimited, ScopeStartPhone, time.Hour)
		}
	}
	wantAllowed(t, "fourth sms of the budget", g.SMS(ctx, "+31600000001"))
	wantAllowed(t, "fifth sms of the budget", g.SMS(ctx, "+31600000002"))
	wantDenial(t, g.SMS(ctx, "+31600000003"), recovery.ErrRateLimited, ScopeSMSGlobal, time.Hour)
}

func TestStartRefusedByIPDoesNotCountAccount(t *testing.T) {
	t.Parallel()
	g := newTestGuard(t, DefaultConfig())
	for i := range 10 {
		wantAllowed(t, "start", g.Start(ctx, "192.0.2.1", fmt.Sprintf("user%d", i)))
	}
	for range 5 {
		wantDenial(t, g.Start(ctx, "192.0.2.1", "victim"), recovery.ErrRateLimited, ScopeStartIP, time.Hour)
	}
	for i := range 3 {
		wantAllowed(t, "victim's own start", g.Start(ctx, fmt.Sprintf("198.51.100.%d", i+1), "victim"))
	}
	wantDenial(t, g.Start(ctx, "198.51.100.9", "victim"), recovery.ErrRateLimited, ScopeStartAccount, time.Hour)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	const ip, account = "192.0.2.1", "alice@example.com"
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, fmt.Sprintf("failure %d", i), g.fail(ctx, ip, account))
	}
	err := g.fail(ctx, ip, account)
	d := wantDenial(t, err, recovery.ErrLocked, ScopeLockout, cfg.Lockout.Duration)
	if _, ok := err.(*recovery.Denial); !ok {
		t.Fatalf("got a %T, want the *recovery.Denial itself when one threshold is reached", err)
	}
	if !d.Reset.Equal(t0.Add(cfg.Lockout.Duration)) {
		t.Fatalf("lock ends %s, want %s", d.Reset, t0.Add(cfg.Lockout.Duration))
	}

	g.clock.Advance(time.Minute)
	left := cfg.Lockout.Duration - time.Minute
	wantDenial(t, g.Start(ctx, "198.51.100.7", account), recovery.ErrLocked, ScopeLockout, left)
	wantDenial(t, g.Verify(ctx, "198.51.100.7", account), recovery.ErrLocked, ScopeLockout, left)
	wantAllowed(t, "another account from the same client", g.Start(ctx, ip, "bob@example.com"))

	g.clock.Advance(left - time.Second)
	wantDenial(t, g.Verify(ctx, ip, account), recovery.ErrLocked, ScopeLockout, time.Second)
	g.clock.Advance(time.Second)
	wantAllowed(t, "verify once the lock ran out", g.Verify(ctx, ip, account))
	wantAllowed(t, "start once the lock ran out", g.Start(ctx, ip, account))

	// The lock closed its window: the next lock takes as many failures
	// again, and lasts twice as long.
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, fmt.Sprintf("failure %d after the lock", i), g.fail(ctx, "198.51.100.8", account))
	}
	wantDenial(t, g.fail(ctx, "198.51.100.8", account), recovery.ErrLocked, ScopeLockout, 2*cfg.Lockout.Duration)
}

func TestIPBlock(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
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
			n := int(cfg.IPBlock.Failures)
			for i := range n - 1 {
				wantAllowed(t, fmt.Sprintf("failure %d", i+1), g.fail(ctx, tc.ip(i), fmt.Sprintf("user%d", i)))
			}
			wantDenial(t, g.fail(ctx, tc.ip(n-1), "last"), recovery.ErrBlocked, ScopeIPBlock, cfg.IPBlock.Duration)

			g.clock.Advance(10 * time.Minute)
			left := cfg.IPBlock.Duration - 10*time.Minute
			wantDenial(t, g.Start(ctx, tc.sibling, "fresh"), recovery.ErrBlocked, ScopeIPBlock, left)
			wantDenial(t, g.Verify(ctx, tc.sibling, "fresh"), recovery.ErrBlocked, ScopeIPBlock, left)
			wantAllowed(t, "another client", g.Start(ctx, tc.other, "fresh"))

			g.clock.Advance(left)
			wantAllowed(t, "start once the block ran out", g.Start(ctx, tc.sibling, "fresh"))
		})
	}
}

func TestFailureReachingBothThresholds(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Lockout.Failures, cfg.IPBlock.Failures = 2, 2
	g := newTestGuard(t, cfg)
	wantAllowed(t, "first failure", g.fail(ctx, "192.0.2.1", "alice"))
	err := g.fail(ctx, "192.0.2.1", "alice")
	wantDenial(t, err, recovery.ErrBlocked, ScopeIPBlock, cfg.IPBlock.Duration)
	if !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("got %v, want the account lock reported too", err)
	}
	for _, kind := range []string{KindAccount, KindIP} {
		if locks, _ := g.Locks(ctx, kind); len(locks) != 1 {
			t.Errorf("%s locks: %v, want one", kind, locks)
		}
	}
}

func TestSuccessLeavesOthersCountersAlone(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	const nat = "192.0.2.1" // Alice and Mallory share it
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, "mallory's failure", g.fail(ctx, nat, "bob"))
	}
	// Alice starts and gives the right code: the flow asks Start and Verify
	// and records no failure.
	wantAllowed(t, "alice's start", g.Start(ctx, nat, "alice"))
	wantAllowed(t, "alice's verify", g.Verify(ctx, nat, "alice"))
	// Bob's count was not reset by Alice's success, and Alice is not locked.
	wantDenial(t, g.fail(ctx, nat, "bob"), recovery.ErrLocked, ScopeLockout, cfg.Lockout.Duration)
	wantAllowed(t, "alice's next verify", g.Verify(ctx, nat, "alice"))
}

func TestLocksAndLift(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Lockout.Failures, cfg.IPBlock.Failures = 3, 3

	t.Run("account", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail(ctx, fmt.Sprintf("192.0.2.%d", i+1), "alice")
		}
		locks, err := g.Locks(ctx, KindAccount)
		if err != nil {
			t.Fatal(err)
		}
		want := Lock{Kind: KindAccount, Key: "alice", Since: t0, Until: t0.Add(cfg.Lockout.Duration), Strikes: 3, Locks: 1, Reason: ReasonWrongCodes}
		if len(locks) != 1 || locks[0] != want {
			t.Fatalf("Locks = %+v, want [%+v]", locks, want)
		}
		if lifted, err := g.Lift(ctx, KindAccount, "alice"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
		wantAllowed(t, "verify after lift", g.Verify(ctx, "192.0.2.9", "alice"))
		// A fresh set of tries: two failures pass, the third locks again.
		for i := range 2 {
			wantAllowed(t, "failure after lift", g.fail(ctx, fmt.Sprintf("198.51.100.%d", i+1), "alice"))
		}
		wantDenial(t, g.fail(ctx, "198.51.100.3", "alice"), recovery.ErrLocked, ScopeLockout, cfg.Lockout.Duration)
	})

	t.Run("ipv6 client by any address of its /64", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail(ctx, "2001:db8:a:b::5", fmt.Sprintf("user%d", i))
		}
		locks, err := g.Locks(ctx, KindIP)
		if err != nil {
			t.Fatal(err)
		}
		if len(locks) != 1 || locks[0].Key != "2001:db8:a:b::/64" {
			t.Fatalf("Locks = %+v, want the block of 2001:db8:a:b::/64", locks)
		}
		if lifted, err := g.Lift(ctx, KindIP, "2001:db8:a:b::9"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
		wantAllowed(t, "start after lift", g.Start(ctx, "2001:db8:a:b::5", "x"))
		for i := range 2 {
			wantAllowed(t, "failure after lift", g.fail(ctx, "2001:db8:a:b::5", fmt.Sprintf("other%d", i)))
		}
	})

	t.Run("by the key Locks listed", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for i := range 3 {
			_ = g.fail(ctx, "2001:db8:a:b::5", fmt.Sprintf("user%d", i))
		}
		if lifted, err := g.Lift(ctx, KindIP, "2001:db8:a:b::/64"); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v, want true", lifted, err)
		}
	})

	t.Run("nothing to lift", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if lifted, err := g.Lift(ctx, KindAccount, "nobody"); err != nil || lifted {
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
	cfg := DefaultConfig()
	const ip, account = "192.0.2.1", "alice@example.com"

	t.Run("for a time", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		l, set, err := g.Impose(ctx, account, 2*time.Hour)
		want := Lock{Kind: KindAccount, Key: account, Since: t0, Until: t0.Add(2 * time.Hour), Reason: ReasonSupport}
		if err != nil || !set || l != want {
			t.Fatalf("Impose = %+v, %v, %v; want %+v, set", l, set, err, want)
		}
		if l, set, err := g.Impose(ctx, account, 2*time.Hour); err != nil || set || l != want {
			t.Fatalf("Impose again = %+v, %v, %v; want the same lock, not new", l, set, err)
		}
		wantDenial(t, g.Start(ctx, ip, account), recovery.ErrLocked, ScopeLockout, 2*time.Hour)
		wantDenial(t, g.Verify(ctx, ip, account), recovery.ErrLocked, ScopeLockout, 2*time.Hour)
		if _, err := g.Guess(ctx, ip, account); !errors.Is(err, recovery.ErrLocked) {
			t.Fatalf("Guess = %v, want ErrLocked", err)
		}
		wantAllowed(t, "another account", g.Start(ctx, ip, "bob@example.com"))
		locks, err := g.Locks(ctx, KindAccount)
		if err != nil || len(locks) != 1 || locks[0] != want {
			t.Fatalf("Locks = %+v, %v; want [%+v]", locks, err, want)
		}
		g.clock.Advance(2 * time.Hour)
		wantAllowed(t, "start once the lock ran out", g.Start(ctx, ip, account))
	})

	t.Run("until lifted", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if _, set, err := g.Impose(ctx, account, 0); err != nil || !set {
			t.Fatalf("Impose = %v, %v", set, err)
		}
		g.clock.Advance(365 * 24 * time.Hour)
		d := wantDenial(t, g.Verify(ctx, ip, account), recovery.ErrLocked, ScopeLockout, cfg.MaxLockDuration)
		if !d.Permanent {
			t.Errorf("denial %+v, want it to say support lifts it", d)
		}
		if lifted, err := g.Lift(ctx, KindAccount, account); err != nil || !lifted {
			t.Fatalf("Lift = %v, %v", lifted, err)
		}
		wantAllowed(t, "verify after the lift", g.Verify(ctx, ip, account))
	})

	t.Run("never shortens a lock in force, keeps the strikes", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		for range cfg.Lockout.Failures {
			_ = g.fail(ctx, ip, account)
		}
		lockout, err := g.Locks(ctx, KindAccount)
		if err != nil || len(lockout) != 1 {
			t.Fatalf("Locks = %+v, %v", lockout, err)
		}
		l, set, err := g.Impose(ctx, account, time.Minute)
		if err != nil || set {
			t.Fatalf("Impose on a locked account = %v, %v; want no new lock", set, err)
		}
		if !l.Until.Equal(lockout[0].Until) || !l.Since.Equal(t0) || l.Strikes != cfg.Lockout.Failures || l.Locks != 1 || l.Reason != ReasonSupport {
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
			wantAllowed(t, "a wrong code", g.fail(ctx, ip, account))
		}
		if _, _, err := g.Impose(ctx, account, time.Minute); err != nil {
			t.Fatal(err)
		}
		g.clock.Advance(time.Minute)
		// The window of the wrong codes is still open: one more locks.
		wantDenial(t, g.fail(ctx, ip, account), recovery.ErrLocked, ScopeLockout, cfg.Lockout.Duration)
		locks, err := g.Locks(ctx, KindAccount)
		if err != nil || len(locks) != 1 || locks[0].Reason != ReasonWrongCodes || locks[0].Locks != 1 {
			t.Fatalf("Locks = %+v, %v; want the lockout, the first of its run, set by wrong codes", locks, err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		g := newTestGuard(t, cfg)
		if _, _, err := g.Impose(ctx, account, -time.Second); err == nil {
			t.Error("Impose for a negative time succeeded")
		}
		broken, err := New(cfg, brokenStore{}, brokenLocks{}, clock.NewManual(t0))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := broken.Impose(ctx, account, 0); !errors.Is(err, errDown) {
			t.Errorf("Impose on a broken store = %v, want %v", err, errDown)
		}
	})
}

// TestImposeRecord is Impose, the step every LockStore takes, on records.
func TestImposeRecord(t *testing.T) {
	t.Parallel()
	now := t0
	tests := []struct {
		name    string
		r       Record
		d       time.Duration
		want    Record
		wantSet bool
	}{
		{"no record", Record{}, time.Hour,
			Record{Lock: Lock{Since: now, Until: now.Add(time.Hour), Reason: ReasonSupport}}, true},
		{"until lifted", Record{}, 0,
			Record{Lock: Lock{Since: now, Permanent: true, Reason: ReasonSupport}}, true},
		{"strikes and window stay", Record{Lock: Lock{Strikes: 4, Locks: 2, Since: now.Add(-time.Hour), Until: now.Add(-time.Minute)}, InWindow: 3, WindowEnd: now.Add(time.Minute)}, time.Hour,
			Record{Lock: Lock{Strikes: 4, Locks: 2, Since: now, Until: now.Add(time.Hour), Reason: ReasonSupport}, InWindow: 3, WindowEnd: now.Add(time.Minute)}, true},
		{"a later end stays", Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(2 * time.Hour), Locks: 1}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(2 * time.Hour), Locks: 1, Reason: ReasonSupport}}, false},
		{"an earlier end is pushed back", Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(time.Minute), Locks: 1}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Until: now.Add(time.Hour), Locks: 1, Reason: ReasonSupport}}, false},
		{"a lasting lock stays", Record{Lock: Lock{Since: now.Add(-time.Minute), Permanent: true, Strikes: 100}}, time.Hour,
			Record{Lock: Lock{Since: now.Add(-time.Minute), Permanent: true, Strikes: 100, Reason: ReasonSupport}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			if set := Impose(&r, now, tt.d); set != tt.wantSet || r != tt.want {
				t.Errorf("Impose = %v, %+v; want %v, %+v", set, r, tt.wantSet, tt.want)
			}
		})
	}
	// A lock that wrong codes set later is theirs, not support's.
	r := Record{}
	Impose(&r, now, time.Minute)
	p := Policy{Threshold: 1, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour, Run: true}
	if st := p.Strike(&r, now.Add(time.Minute)); !st.Set || st.Lock.Reason != "" {
		t.Errorf("a strike after an imposed lock = %+v, want a lock set by wrong codes", st)
	}
}

func TestStartIPGroupsIPv6By64(t *testing.T) {
	t.Parallel()
	g := newTestGuard(t, DefaultConfig())
	for i := range 10 {
		wantAllowed(t, "start", g.Start(ctx, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("u%d", i)))
	}
	wantDenial(t, g.Start(ctx, "2001:db8:1:2:ffff::1", "u10"), recovery.ErrRateLimited, ScopeStartIP, time.Hour)
	wantDenial(t, g.Start(ctx, "[2001:db8:1:2::99]:443", "u11"), recovery.ErrRateLimited, ScopeStartIP, time.Hour)
	wantAllowed(t, "start from the next /64", g.Start(ctx, "2001:db8:1:3::1", "u12"))
}

func TestFailsClosed(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	strict := DefaultConfig()
	strict.Lockout.Failures, strict.IPBlock.Failures = 1, 1
	for _, tc := range []struct {
		name     string
		counters bool // break the counter store, else the lock store
		call     func(*Guard) error
	}{
		{"start counters", true, func(g *Guard) error { return g.Start(ctx, "192.0.2.1", "a") }},
		{"sms counters", true, func(g *Guard) error { return g.SMS(ctx, "+31612345678") }},
		{"verify counters", true, func(g *Guard) error { return g.Verify(ctx, "192.0.2.1", "a") }},

		{"start locks", false, func(g *Guard) error { return g.Start(ctx, "192.0.2.1", "a") }},
		{"verify locks", false, func(g *Guard) error { return g.Verify(ctx, "192.0.2.1", "a") }},
		{"guess locks", false, func(g *Guard) error { _, err := g.Guess(ctx, "192.0.2.1", "a"); return err }},
		{"right locks", false, func(g *Guard) error { return g.Right(ctx, "192.0.2.1", "a") }},
		{"locks listing", false, func(g *Guard) error { _, err := g.Locks(ctx, KindIP); return err }},
		{"lift locks", false, func(g *Guard) error { _, err := g.Lift(ctx, KindIP, "192.0.2.1"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, err := NewLRUStore(10, clk)
			if err != nil {
				t.Fatal(err)
			}
			var g *Guard
			if tc.counters {
				g, err = New(strict, brokenStore{}, newMemLocks(clk), clk)
			} else {
				g, err = New(strict, store, brokenLocks{}, clk)
			}
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(g)
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
			got := ClientKey(tc.in)
			if got != tc.want {
				t.Fatalf("ClientKey(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := ClientKey(got); again != got {
				t.Fatalf("ClientKey(%q) = %q, want it unchanged", got, again)
			}
		})
	}
}

func TestScopesNeverShareCounters(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.StartIP.Events, cfg.VerifyIP.Events, cfg.StartAccount.Events, cfg.StartPhone.Events = 1, 1, 1, 1
	g := newTestGuard(t, cfg)
	// One string used as a client, an account and a phone in every scope:
	// each scope allows its one event.
	const s = "192.0.2.1"
	wantAllowed(t, "start", g.Start(ctx, s, s))
	wantAllowed(t, "verify", g.Verify(ctx, s, s))
	wantAllowed(t, "sms", g.SMS(ctx, s))
	wantAllowed(t, "failure", g.fail(ctx, s, s))
}
