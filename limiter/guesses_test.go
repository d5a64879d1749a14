package limiter_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestConcurrentGuessesNeverPassLockout sends 200 guesses for one account's
// flow at once, from many clients: exactly lockout of them are counted (and
// so may be compared), and the rest refused.
func TestConcurrentGuessesNeverPassLockout(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	g := newTestGuard(t, cfg)
	id := g.flowOf("target@example.com")
	var counted, locks, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		wg.Go(func() {
			<-start
			_, guess, err := g.Verify(ctx, fmt.Sprintf("192.0.2.%d", i%50), id, maxAttempts)
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
	if f, err := g.store.Flow(ctx, id); err != nil || f.Attempts != int(cfg.Lockout.Failures) {
		t.Errorf("flow after the guesses: %+v, %v; want %d attempts, the refused ones not counted", f, err, cfg.Lockout.Failures)
	}
}

// TestGuessesCappedForGood makes wrong guesses as fast as the locks allow,
// for a year: the 100th in a row locks the account until support lifts it,
// and no lock running out lets another through.
func TestGuessesCappedForGood(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	g := newTestGuard(t, cfg)
	const account = "target@example.com"
	id := g.flowOf(account)
	var (
		guesses, firstDay int
		durations         []time.Duration
		end               = t0.Add(365 * 24 * time.Hour)
	)
	for i := 0; g.clock.Now().Before(end); i++ {
		_, guess, err := g.Verify(ctx, fmt.Sprintf("198.51.100.%d", i%200), id, maxAttempts)
		var d *recovery.Denial
		switch {
		case errors.As(err, &d):
			g.clock.Advance(d.RetryAfter) // wait as told; a permanent lock never ends
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

	locks, err := g.Locks(ctx, recovery.KindAccount)
	if err != nil || len(locks) != 1 || !locks[0].Permanent || locks[0].Strikes != cfg.PermanentAfter {
		t.Fatalf("Locks = %+v, %v; want the one permanent lock after %d strikes", locks, err, cfg.PermanentAfter)
	}
	wantDenial(t, g.Start(ctx, "203.0.113.1", account), recovery.ErrLocked, limiter.ScopeLockout, cfg.MaxLockDuration)
	if lifted, err := g.Lift(ctx, recovery.KindAccount, account); !lifted || err != nil {
		t.Fatalf("Lift = %v, %v, want true", lifted, err)
	}
	wantAllowed(t, "start after support lifted the lock", g.Start(ctx, "203.0.113.1", account))
	for i := 1; i < int(cfg.Lockout.Failures); i++ {
		wantAllowed(t, "failure of a fresh run", g.fail("203.0.113.1", account))
	}
	wantDenial(t, g.fail("203.0.113.1", account), recovery.ErrLocked, limiter.ScopeLockout, cfg.Lockout.Duration)
}

// TestRightEndsTheRun: a correct code ends the account's run of wrong codes,
// a lock its own guess set included, and takes the client's strike back;
// a lock's running out does not.
func TestRightEndsTheRun(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	// The client's strikes show: 2 × (lockout-1) wrong codes stay under the
	// block, and one more reaches it, unless the right code counted.
	cfg.IPBlock.Failures = 2*(cfg.Lockout.Failures-1) + 1
	g := newTestGuard(t, cfg)
	const ip, account = "192.0.2.1", "alice@example.com"
	for range cfg.Lockout.Failures - 1 {
		wantAllowed(t, "failure", g.fail(ip, account))
	}
	// The guess that reaches the threshold sets the lock before its code is
	// compared; it was right, so the lock goes with the run.
	guess, err := g.right(ip, account)
	if err != nil || !guess.LockedAccount() {
		t.Fatalf("right code at the threshold: %+v, %v, want its guess to have set the lock", guess, err)
	}
	if locks, err := g.Locks(ctx, recovery.KindAccount); err != nil || len(locks) != 0 {
		t.Fatalf("Locks after the right code = %+v, %v; want none", locks, err)
	}
	wantAllowed(t, "start after the right code", g.Start(ctx, ip, account))
	for range cfg.Lockout.Failures - 1 {
		wantAllowed(t, "failure of a new run", g.fail(ip, account))
	}
	// The client's record holds the wrong codes only: one more blocks it.
	wantDenial(t, g.fail(ip, "bob@example.com"), recovery.ErrBlocked, limiter.ScopeIPBlock, cfg.IPBlock.Duration)
}

// TestRightEndsOnce: of two right codes for one flow, only the first ends
// the run; the second finds the flow gone and changes nothing.
func TestRightEndsOnce(t *testing.T) {
	t.Parallel()
	g := newTestGuard(t, limiter.DefaultConfig())
	const ip, account = "192.0.2.1", "alice@example.com"
	id := g.flowOf(account)
	if _, _, err := g.Verify(ctx, ip, id, maxAttempts); err != nil {
		t.Fatal(err)
	}
	tok := recovery.Token{Hash: []byte("token"), Account: account, FlowID: id, ExpiresAt: t0.Add(time.Hour)}
	if won, err := g.Right(ctx, ip, recovery.Flow{ID: id}, tok); err != nil || !won {
		t.Fatalf("first Right = %v, %v; want it to consume the flow", won, err)
	}
	if won, err := g.Right(ctx, ip, recovery.Flow{ID: id}, tok); err != nil || won {
		t.Fatalf("second Right = %v, %v; want the flow gone", won, err)
	}
	if _, _, err := g.Verify(ctx, ip, id, maxAttempts); !errors.Is(err, recovery.ErrNotFound) {
		t.Fatalf("Verify after Right = %v, want %v", err, recovery.ErrNotFound)
	}
}

// TestGuessRefusedByLockIsNotAStrike: a guess the account's lock refuses
// compares no code, so it counts against the client neither as a strike
// nor as an attempt.
func TestGuessRefusedByLockIsNotAStrike(t *testing.T) {
	t.Parallel()
	cfg := limiter.DefaultConfig()
	g := newTestGuard(t, cfg)
	for range cfg.Lockout.Failures {
		_ = g.fail("192.0.2.1", "alice@example.com")
	}
	for range 3 * cfg.IPBlock.Failures {
		if err := g.fail("192.0.2.2", "alice@example.com"); !errors.Is(err, recovery.ErrLocked) {
			t.Fatalf("guess for a locked account: %v, want ErrLocked", err)
		}
	}
	wantAllowed(t, "the refused client's next start", g.Start(ctx, "192.0.2.2", "bob@example.com"))
	if f, err := g.store.Flow(ctx, g.flowOf("alice@example.com")); err != nil || f.Attempts != int(cfg.Lockout.Failures) {
		t.Errorf("alice's flow = %+v, %v; want %d attempts", f, err, cfg.Lockout.Failures)
	}
	// The client has all its strikes: the last of them blocks it.
	for i := range cfg.IPBlock.Failures - 1 {
		wantAllowed(t, "a wrong code of the refused client", g.fail("192.0.2.2", fmt.Sprintf("user%d", i)))
	}
	wantDenial(t, g.fail("192.0.2.2", "last"), recovery.ErrBlocked, limiter.ScopeIPBlock, cfg.IPBlock.Duration)
}

// TestFullLockStoreRefuses: when the security state has no room, a support
// lock is refused with ErrFull, and a guess is answered as not counted
// (Uncounted, ErrFull) rather than counted nowhere; its code may still be
// compared, so a right one still ends the flow.
func TestFullLockStoreRefuses(t *testing.T) {
	t.Parallel()
	const room = 4
	g := newTestGuardSized(t, limiter.DefaultConfig(), room)
	id := g.flowOf("alice@example.com")
	for i := range room {
		if _, _, err := g.Impose(ctx, fmt.Sprintf("held%d", i), time.Hour); err != nil {
			t.Fatalf("Impose %d: %v", i, err)
		}
	}
	if _, _, err := g.Impose(ctx, "one-too-many", time.Hour); !errors.Is(err, recovery.ErrFull) {
		t.Fatalf("Impose on a full store = %v, want %v", err, recovery.ErrFull)
	}
	f, guess, err := g.Verify(ctx, "192.0.2.1", id, maxAttempts)
	if err != nil || guess.Set != nil || f.Attempts != 1 {
		t.Fatalf("Verify on a full store = %+v, %+v, %v; want the attempt counted", f, guess, err)
	}
	d := wantDenial(t, guess.Uncounted, recovery.ErrFull, limiter.ScopeLockout, time.Minute)
	if d.RetryAfter <= 0 {
		t.Errorf("no Retry-After: %+v", d)
	}
	if won, err := g.Right(ctx, "192.0.2.1", recovery.Flow{ID: id}, recovery.Token{Hash: []byte("token"), FlowID: id, ExpiresAt: t0.Add(time.Hour)}); err != nil || !won {
		t.Fatalf("Right on a full store = %v, %v; want the flow consumed", won, err)
	}
}
