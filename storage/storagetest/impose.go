package storagetest

import (
	"context"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"sync/atomic"
	"testing"
	"time"
)

// runImpose checks Store.Impose: the lock support imposes on a key,
// for a time or until lifted.
func runImpose(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()
	// within reports whether d is want, give or take half a unit: real time
	// passes between the clock read here and the store's.
	within := func(d, want time.Duration) bool { return d >= want-u/2 && d <= want+u/2 }

	t.Run("ForATime", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		const a = "alice@example.com"
		now := clk.Now()
		l, set, err := s.Impose(ctx, recovery.KindAccount, a, 20*u)
		if err != nil || !set {
			t.Fatalf("Impose: %+v, %v, %v; want a new lock", l, set, err)
		}
		if l.Kind != recovery.KindAccount || l.Key != a || l.Permanent || l.Strikes != 0 || l.Locks != 0 ||
			l.Reason != recovery.ReasonSupport || !within(l.Since.Sub(now), 0) || !within(l.Until.Sub(l.Since), 20*u) {
			t.Fatalf("Impose: %+v, want support's lock on %s for %s from now", l, a, 20*u)
		}
		assertLock(t, s, recovery.KindAccount, a, &l)
		assertLocks(t, s, recovery.KindAccount, l)
		assertLocks(t, s, recovery.KindIP)
		if again, set, err := s.Impose(ctx, recovery.KindAccount, a, 20*u); err != nil || set || !again.Since.Equal(l.Since) {
			t.Errorf("Impose again: %+v, %v, %v; want the lock in force, not a new one", again, set, err)
		}
		if st := mustStrike(t, s, recovery.KindAccount, a, runPolicy(u)); !st.Refused {
			t.Errorf("strike while imposed: %+v, want refused", st)
		}
		clk.Advance(21 * u)
		assertLock(t, s, recovery.KindAccount, a, nil)
		assertLocks(t, s, recovery.KindAccount)
	})

	t.Run("UntilLifted", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		const a = "bob@example.com"
		l, set, err := s.Impose(ctx, recovery.KindAccount, a, 0)
		if err != nil || !set || !l.Permanent || !l.Until.IsZero() || l.Reason != recovery.ReasonSupport {
			t.Fatalf("Impose until lifted: %+v, %v, %v", l, set, err)
		}
		clk.Advance(20 * u)
		assertLock(t, s, recovery.KindAccount, a, &l)
		assertLocks(t, s, recovery.KindAccount, l)
		if lifted, err := s.EndRun(ctx, recovery.KindAccount, a); !lifted || err != nil {
			t.Fatalf("EndRun: %v, %v; want the lock lifted", lifted, err)
		}
		assertLock(t, s, recovery.KindAccount, a, nil)
		assertLocks(t, s, recovery.KindAccount)
	})

	t.Run("KeepsTheRun", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		const a = "carol@example.com"
		p := runPolicy(u) // two strikes in a window lock
		p.Duration, p.MaxDuration = 20*u, 20*u
		mustStrike(t, s, recovery.KindAccount, a, p)
		if _, set, err := s.Impose(ctx, recovery.KindAccount, a, 2*u); err != nil || !set {
			t.Fatalf("Impose: %v, %v", set, err)
		}
		clk.Advance(3 * u)
		// The strike before the imposed lock still counts: the next one
		// sets a lock, which wrong codes set, not support.
		st := mustStrike(t, s, recovery.KindAccount, a, p)
		if !st.Set || st.Lock.Strikes != 2 || st.Lock.Locks != 1 || st.Lock.Reason != "" {
			t.Fatalf("strike after the imposed lock: %+v, want the second in a row to set the run's first lock", st)
		}
		assertLock(t, s, recovery.KindAccount, a, &st.Lock)
		assertLocks(t, s, recovery.KindAccount, st.Lock)
	})

	t.Run("NeverShortens", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		const ip = "192.0.2.40"
		p := clientPolicy(u) // three strikes block
		p.Window, p.Duration, p.MaxDuration = 30*u, 20*u, 20*u
		var block recovery.Lock
		for range 3 {
			block = mustStrike(t, s, recovery.KindIP, ip, p).Lock
		}
		l, set, err := s.Impose(ctx, recovery.KindIP, ip, u)
		if err != nil || set || !l.Until.Equal(block.Until) || !l.Since.Equal(block.Since) || l.Strikes != 3 || l.Reason != recovery.ReasonSupport {
			t.Fatalf("Impose for %s on a block of %s: %+v, %v, %v; want the block as it was, held by support", u, 20*u, l, set, err)
		}
		now := clk.Now()
		l, _, err = s.Impose(ctx, recovery.KindIP, ip, 40*u)
		if err != nil || !within(l.Until.Sub(now), 40*u) {
			t.Fatalf("Impose for %s: %+v, %v; want the block to last that long from now", 40*u, l, err)
		}
		clk.Advance(32 * u) // past the block and the window it had
		assertLock(t, s, recovery.KindIP, ip, &l)
		clk.Advance(10 * u)
		assertLock(t, s, recovery.KindIP, ip, nil)
	})

	t.Run("ConcurrentSetsOnce", func(t *testing.T) {
		t.Parallel()
		s, _ := h.New(t)
		var set, failed atomic.Int64
		concurrently(50, func(i int) {
			d := 20 * u
			if i%2 == 0 {
				d = 0
			}
			_, ok, err := s.Impose(ctx, recovery.KindAccount, "dave@example.com", d)
			switch {
			case err != nil:
				failed.Add(1)
				t.Errorf("Impose: %v", err)
			case ok:
				set.Add(1)
			}
		})
		if set.Load() != 1 {
			t.Errorf("50 concurrent Impose calls: %d set the lock, want 1", set.Load())
		}
		l, ok, err := GetLock(ctx, s, recovery.KindAccount, "dave@example.com")
		if err != nil || !ok || !l.Permanent {
			t.Errorf("GetLock: %+v, %v, %v; want the lock until lifted that half of them asked for", l, ok, err)
		}
	})
}
