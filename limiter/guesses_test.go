package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestConcurrentGuessesNeverPassLockout sends 200 guesses for one account at
// once, from many clients: exactly lockout of them are counted (and so may
// be compared), and the rest refused.
func TestConcurrentGuessesNeverPassLockout(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	var counted, locks, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		wg.Go(func() {
			<-start
			guess, err := g.Guess(ctx, fmt.Sprintf("192.0.2.%d", i%50), "target@example.com")
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
	}
	close(start)
	wg.Wait()
	if counted.Load() != cfg.Lockout.Failures || locks.Load() != 1 || refused.Load() != 200-cfg.Lockout.Failures {
		t.Errorf("200 concurrent guesses: %d counted, %d locked the account, %d refused; want %d, 1, %d",
			counted.Load(), locks.Load(), refused.Load(), cfg.Lockout.Failures, 200-cfg.Lockout.Failures)
	}
}

// TestGuessesCappedForGood makes wrong guesses as fast as the locks allow,
// for a year: the 100th in a row locks the account until support lifts it,
// and no lock running out lets another through.
func TestGuessesCappedForGood(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	const account = "target@example.com"
	var (
		guesses, firstDay int
		durations         []time.Duration
		end               = t0.Add(365 * 24 * time.Hour)
	)
	for i := 0; g.clock.Now().Before(end); i++ {
		guess, err := g.Guess(ctx, fmt.Sprintf("198.51.100.%d", i%200), account)
		var d *recovery.Denial
		switch {
		case errors.As(err, &d) && d.Permanent:
			g.clock.Advance(d.RetryAfter) // wait as told: it never ends
			continue
		case errors.As(err, &d):
			g.clock.Advance(d.RetryAfter)
			continue
		case err != nil:
			t.Fatal(err)
		}
		guesses++
		if g.clock.Now().Before(t0.Add(24 * time.Hour)) {
			firstDay++
		}
		if errors.As(guess.Set, &d) && !d.Permanent {
			durations = append(durations, d.RetryAfter)
		}
	}
	if guesses != int(cfg.PermanentAfter) {
		t.Errorf("wrong guesses in a year: %d, want %d", guesses, cfg.PermanentAfter)
	}
	// 5 each at 0, 30m, 1h30, 3h30, 7h30 and 15h30.
	if firstDay != 30 {
		t.Errorf("wrong guesses in the first day: %d, want 30", firstDay)
	}
	want := []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour}
	for i, d := range durations {
		if w := want[min(i, len(want)-1)]; d != w {
			t.Errorf("lock %d lasts %s, want %s", i+1, d, w)
		}
	}
	t.Logf("%d guesses in a year (%d on the first day): odds of finding a 6-digit code %.0e",
		guesses, firstDay, float64(guesses)/1e6)

	locks, err := g.Locks(ctx, KindAccount)
	if err != nil || len(locks) != 1 || !locks[0].Permanent || locks[0].Strikes != cfg.PermanentAfter {
		t.Fatalf("Locks = %+v, %v; want the one permanent lock after %d strikes", locks, err, cfg.PermanentAfter)
	}
	wantDenial(t, g.Start(ctx, "203.0.113.1", account), recovery.ErrLocked, ScopeLockout, cfg.MaxLockDuration)
	if lifted, err := g.Lift(ctx, KindAccount, account); !lifted || err != nil {
		t.Fatalf("Lift = %v, %v, want true", lifted, err)
	}
	wantAllowed(t, "start after support lifted the lock", g.Start(ctx, "203.0.113.1", account))
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, "failure of a fresh run", g.fail(ctx, "203.0.113.1", account))
	}
	wantDenial(t, g.fail(ctx, "203.0.113.1", account), recovery.ErrLocked, ScopeLockout, cfg.Lockout.Duration)
}

// TestRightEndsTheRun: a correct code ends the account's run of wrong codes,
// a lock its own guess set included, and takes the client's strike back;
// a lock's running out does not.
func TestRightEndsTheRun(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	const ip, account = "192.0.2.1", "alice@example.com"
	for range cfg.Lockout.Failures - 1 {
		wantAllowed(t, "failure", g.fail(ctx, ip, account))
	}
	// The guess that reaches the threshold sets the lock before its code is
	// compared; it was right, so the lock goes with the run.
	guess, err := g.Guess(ctx, ip, account)
	if err != nil || !guess.LockedAccount() {
		t.Fatalf("guess at the threshold: %+v, %v, want it to set the lock", guess, err)
	}
	wantAllowed(t, "right", g.Right(ctx, ip, account))
	wantAllowed(t, "start after the right code", g.Start(ctx, ip, account))
	for range cfg.Lockout.Failures - 1 {
		wantAllowed(t, "failure of a new run", g.fail(ctx, ip, account))
	}
	// The client's record holds the wrong codes only: 4 + 4.
	l := g.locks.records[[2]string{KindIP, ip}]
	if l == nil || l.Strikes != 2*(cfg.Lockout.Failures-1) {
		t.Errorf("client's strikes: %+v, want %d", l, 2*(cfg.Lockout.Failures-1))
	}
}

// TestGuessRefusedByLockIsNotAStrike: a guess the account's lock refuses
// compares no code, so it does not count against the client.
func TestGuessRefusedByLockIsNotAStrike(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	g := newTestGuard(t, cfg)
	for range cfg.Lockout.Failures {
		_ = g.fail(ctx, "192.0.2.1", "alice@example.com")
	}
	for range 3 * cfg.IPBlock.Failures {
		if _, err := g.Guess(ctx, "192.0.2.2", "alice@example.com"); !errors.Is(err, recovery.ErrLocked) {
			t.Fatalf("guess for a locked account: %v, want ErrLocked", err)
		}
	}
	wantAllowed(t, "the refused client's next start", g.Start(ctx, "192.0.2.2", "bob@example.com"))
	if r := g.locks.records[[2]string{KindIP, "192.0.2.2"}]; r != nil {
		t.Errorf("refused guesses left a record: %+v", r)
	}
}

// TestFullLockStoreRefuses: when the lock store has no room, a guess is
// refused with ErrFull rather than counted nowhere.
func TestFullLockStoreRefuses(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	store, err := NewLRUStore(10, clk)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(DefaultConfig(), store, fullLocks{newMemLocks(clk)}, clk)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Guess(ctx, "192.0.2.1", "alice@example.com")
	d := wantDenial(t, err, recovery.ErrFull, ScopeIPBlock, fullRetry)
	if d.RetryAfter <= 0 {
		t.Errorf("no Retry-After: %+v", d)
	}
}

// fullLocks is a LockStore with no room for anything.
type fullLocks struct{ *memLocks }

func (fullLocks) Strike(context.Context, string, string, Policy) (Strike, error) {
	return Strike{}, recovery.ErrFull
}
