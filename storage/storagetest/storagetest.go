package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Store is what a storage backend implements.
type Store interface {
	recovery.Store
	recovery.Store
}

// Clock is the time a store under test reads, as the suite drives it.
type Clock interface {
	recovery.Clock
	// Advance lets d pass for the store.
	Advance(d time.Duration)
}

// Harness builds the backend under test.
type Harness struct {
	// New returns an empty store and the clock it reads, for one test,
	// registering any cleanup with tb.Cleanup. Stores from separate calls
	// must not see each other's records.
	New func(tb testing.TB) (Store, Clock)
	// Unit is the suite's time scale: records live a few units and the
	// suite advances the clock by whole units. With a clock.Manual any
	// value will do; with real time, it must be well above a round trip to
	// the backend on a loaded machine, and above the backend's time
	// resolution.
	Unit time.Duration
}

// Run checks the store that h builds against the contract, in parallel
// subtests.
func Run(t *testing.T, h Harness) {
	t.Run("Flows", func(t *testing.T) {
		t.Parallel()
		runFlows(t, h)
	})
	t.Run("Tokens", func(t *testing.T) {
		t.Parallel()
		runTokens(t, h)
	})
	t.Run("Locks", func(t *testing.T) {
		t.Parallel()
		runLocks(t, h)
	})
	t.Run("Plans", func(t *testing.T) {
		t.Parallel()
		runPlans(t, h)
	})
	t.Run("Spend", func(t *testing.T) {
		t.Parallel()
		runSpend(t, h)
	})
	t.Run("Impose", func(t *testing.T) {
		t.Parallel()
		runImpose(t, h)
	})
	t.Run("Trails", func(t *testing.T) {
		t.Parallel()
		runTrails(t, h)
	})
	t.Run("Used", func(t *testing.T) {
		t.Parallel()
		runUsed(t, h)
	})
}

// newFlow returns a flow sent now that lives for ttl. Times are whole
// milliseconds in UTC, which every backend keeps exactly.
func newFlow(id string, clk Clock, ttl time.Duration) recovery.Flow {
	now := clk.Now().UTC().Truncate(time.Millisecond)
	return recovery.Flow{
		ID:          id,
		Account:     "alice@example.com",
		CodeHash:    []byte("hash-of-" + id),
		Sends:       1,
		Lang:        "nl",
		SentAt:      now,
		ExpiresAt:   now.Add(ttl),
		CreatedAt:   now,
		ClientIP:    "192.0.2.1",
		PublicURL:   "https://mail.example.com",
		PhoneMasked: "+31*****678",
		Prefix:      otherPrefix,
	}
}

func runFlows(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()

	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		want := newFlow("f1", clk, 10*u)
		mustCreate(t, s, want)
		for range 2 { // reading changes nothing
			got, err := s.Flow(ctx, "f1")
			if err != nil {
				t.Fatalf("Flow: %v", err)
			}
			assertFlow(t, got, want)
		}
		if _, err := s.Flow(ctx, "other"); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Flow of an unknown ID: got %v, want ErrNotFound", err)
		}
	})

	t.Run("ReturnedFlowIsACopy", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		want := newFlow("f1", clk, 10*u)
		in := want
		in.CodeHash = slices.Clone(want.CodeHash)
		mustCreate(t, s, in)
		in.CodeHash[0] ^= 0xff
		got, err := s.Flow(ctx, "f1")
		if err != nil {
			t.Fatalf("Flow: %v", err)
		}
		got.CodeHash[0] ^= 0xff
		got, err = s.Flow(ctx, "f1")
		if err != nil {
			t.Fatalf("Flow: %v", err)
		}
		assertFlow(t, got, want)
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		mustCreate(t, s, newFlow("f1", clk, 2*u))
		if _, err := s.Flow(ctx, "f1"); err != nil {
			t.Fatalf("Flow before expiry: %v", err)
		}
		clk.Advance(3 * u)
		if _, err := s.Flow(ctx, "f1"); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Flow: got %v, want ErrNotFound", err)
		}
		if _, err := Attempt(ctx, s, "f1", 5); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Attempt: got %v, want ErrNotFound", err)
		}
		if ok, err := Consume(ctx, s, "f1"); ok || err != nil {
			t.Errorf("ConsumeFlow: got %v, %v, want false, nil", ok, err)
		}
		now := clk.Now()
		if _, err := Resend(ctx, s, "f1", []byte("new"), recovery.ResendOp{Now: now, Interval: 0, ExpiresAt: now.Add(10 * u)}); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Resend: got %v, want ErrNotFound", err)
		}
	})

	t.Run("AttemptCounts", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		want := newFlow("f1", clk, 10*u)
		mustCreate(t, s, want)
		const maxAttempts = 3
		for i := 1; i <= maxAttempts; i++ {
			got, err := Attempt(ctx, s, "f1", maxAttempts)
			if err != nil {
				t.Fatalf("attempt %d: %v", i, err)
			}
			want.Attempts = i
			assertFlow(t, got, want)
		}
		if _, err := Attempt(ctx, s, "f1", maxAttempts); !errors.Is(err, recovery.ErrNotFound) {
			t.Fatalf("attempt past the limit: got %v, want ErrNotFound", err)
		}
		if _, err := s.Flow(ctx, "f1"); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("flow after its last attempt: got %v, want ErrNotFound", err)
		}
		if _, err := Attempt(ctx, s, "unknown", maxAttempts); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Attempt of an unknown ID: got %v, want ErrNotFound", err)
		}
	})

	t.Run("AttemptConcurrent", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		// Long lives here and below, so that no record or hold can
		// expire while the callers run, however slow the machine.
		mustCreate(t, s, newFlow("f1", clk, 100*u))
		const callers, maxAttempts = 200, 5
		var (
			mu     sync.Mutex
			counts []int
			errs   = make([]error, callers)
		)
		concurrently(callers, func(i int) {
			f, err := Attempt(ctx, s, "f1", maxAttempts)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			counts = append(counts, f.Attempts)
			mu.Unlock()
		})
		for _, err := range errs {
			if err != nil && !errors.Is(err, recovery.ErrNotFound) {
				t.Fatalf("Attempt: %v", err)
			}
		}
		slices.Sort(counts)
		if want := []int{1, 2, 3, 4, 5}; !slices.Equal(counts, want) {
			t.Errorf("attempt counts handed out: got %v, want %v", counts, want)
		}
		if _, err := s.Flow(ctx, "f1"); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("flow after its attempts: got %v, want ErrNotFound", err)
		}
	})

	t.Run("ConsumeOnce", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		mustCreate(t, s, newFlow("f1", clk, 100*u))
		const callers = 50
		var won atomic.Int32
		errs := make([]error, callers)
		concurrently(callers, func(i int) {
			ok, err := Consume(ctx, s, "f1")
			errs[i] = err
			if ok {
				won.Add(1)
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("ConsumeFlow: %v", err)
		}
		if n := won.Load(); n != 1 {
			t.Errorf("callers told they consumed the flow: got %d, want 1", n)
		}
		if _, err := s.Flow(ctx, "f1"); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("flow after ConsumeFlow: got %v, want ErrNotFound", err)
		}
		if ok, err := Consume(ctx, s, "unknown"); ok || err != nil {
			t.Errorf("ConsumeFlow of an unknown ID: got %v, %v, want false, nil", ok, err)
		}
	})

	t.Run("Resend", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		want := newFlow("f1", clk, 10*u)
		mustCreate(t, s, want)
		interval := 5 * u

		now := clk.Now().UTC().Truncate(time.Millisecond)
		got, err := Resend(ctx, s, "f1", []byte("second"), recovery.ResendOp{Now: now, Interval: interval, ExpiresAt: now.Add(10 * u)})
		if !errors.Is(err, recovery.ErrTooEarly) {
			t.Fatalf("Resend inside the interval: got %v, want ErrTooEarly", err)
		}
		assertFlow(t, got, want)
		if got, _ := s.Flow(ctx, "f1"); !reflect.DeepEqual(got.CodeHash, want.CodeHash) || got.Sends != 1 {
			t.Errorf("flow changed by an early Resend: %+v", got)
		}

		clk.Advance(interval)
		now = clk.Now().UTC().Truncate(time.Millisecond)
		got, err = Resend(ctx, s, "f1", []byte("second"), recovery.ResendOp{Now: now, Interval: interval, ExpiresAt: now.Add(10 * u)})
		if err != nil {
			t.Fatalf("Resend after the interval: %v", err)
		}
		want.CodeHash = []byte("second")
		want.Sends = 2
		want.SentAt = now
		want.ExpiresAt = now.Add(10 * u)
		assertFlow(t, got, want)
		if got, err := s.Flow(ctx, "f1"); err != nil {
			t.Fatalf("Flow after Resend: %v", err)
		} else {
			assertFlow(t, got, want)
		}

		// The first expiry has passed; the flow lives on to its new one.
		clk.Advance(6 * u)
		if _, err := s.Flow(ctx, "f1"); err != nil {
			t.Errorf("Flow past its first expiry: %v", err)
		}

		if _, err := Resend(ctx, s, "unknown", []byte("x"), recovery.ResendOp{Now: now, Interval: interval, ExpiresAt: now.Add(u)}); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("Resend of an unknown ID: got %v, want ErrNotFound", err)
		}
	})
}

// newToken returns a token that lives for ttl.
func newToken(name string, clk Clock, ttl time.Duration) recovery.Token {
	return recovery.Token{
		Hash:      []byte("hash-of-" + name),
		Account:   "alice@example.com",
		FlowID:    "flow-of-" + name,
		ExpiresAt: clk.Now().UTC().Truncate(time.Millisecond).Add(ttl),
	}
}

func runTokens(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()

	t.Run("SpendOnce", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		want := newToken("t1", clk, 10*u)
		mustPut(t, s, want)
		got, err := s.BeginSpend(ctx, want.Hash, 5*u)
		if err != nil {
			t.Fatalf("BeginSpend: %v", err)
		}
		assertToken(t, got, want)
		if err := s.EndSpend(ctx, want.Hash, true); err != nil {
			t.Fatalf("EndSpend(spent): %v", err)
		}
		if _, err := s.BeginSpend(ctx, want.Hash, 5*u); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("BeginSpend of a spent token: got %v, want ErrNotFound", err)
		}
	})

	t.Run("ReleaseMakesTakeable", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		tok := newToken("t1", clk, 10*u)
		mustPut(t, s, tok)
		if _, err := s.BeginSpend(ctx, tok.Hash, 5*u); err != nil {
			t.Fatalf("BeginSpend: %v", err)
		}
		if _, err := s.BeginSpend(ctx, tok.Hash, 5*u); !errors.Is(err, recovery.ErrBusy) {
			t.Fatalf("BeginSpend of a held token: got %v, want ErrBusy", err)
		}
		if err := s.EndSpend(ctx, tok.Hash, false); err != nil {
			t.Fatalf("EndSpend(not spent): %v", err)
		}
		got, err := s.BeginSpend(ctx, tok.Hash, 5*u)
		if err != nil {
			t.Fatalf("BeginSpend after release: %v", err)
		}
		assertToken(t, got, tok)
	})

	t.Run("ConcurrentSpend", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		tok := newToken("t1", clk, 100*u)
		mustPut(t, s, tok)
		const callers = 50
		var won atomic.Int32
		errs := make([]error, callers)
		concurrently(callers, func(i int) {
			_, err := s.BeginSpend(ctx, tok.Hash, 100*u)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, recovery.ErrBusy):
				errs[i] = err
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("BeginSpend: %v", err)
		}
		if n := won.Load(); n != 1 {
			t.Fatalf("callers holding the token: got %d, want 1", n)
		}
		if err := s.EndSpend(ctx, tok.Hash, true); err != nil {
			t.Fatalf("EndSpend(spent): %v", err)
		}
		if _, err := s.BeginSpend(ctx, tok.Hash, 5*u); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("BeginSpend after spending: got %v, want ErrNotFound", err)
		}
	})

	t.Run("LeaseExpiry", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		tok := newToken("t1", clk, 10*u)
		mustPut(t, s, tok)
		if _, err := s.BeginSpend(ctx, tok.Hash, 2*u); err != nil {
			t.Fatalf("BeginSpend: %v", err)
		}
		if _, err := s.BeginSpend(ctx, tok.Hash, 2*u); !errors.Is(err, recovery.ErrBusy) {
			t.Fatalf("BeginSpend inside the lease: got %v, want ErrBusy", err)
		}
		clk.Advance(3 * u) // the holder never called EndSpend
		if _, err := s.BeginSpend(ctx, tok.Hash, 2*u); err != nil {
			t.Errorf("BeginSpend after the lease: %v", err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		tok := newToken("t1", clk, 2*u)
		mustPut(t, s, tok)
		clk.Advance(3 * u)
		if _, err := s.BeginSpend(ctx, tok.Hash, u); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("BeginSpend of an expired token: got %v, want ErrNotFound", err)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		s, _ := h.New(t)
		hash := []byte("unknown")
		if _, err := s.BeginSpend(ctx, hash, u); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("BeginSpend: got %v, want ErrNotFound", err)
		}
		for _, spent := range []bool{false, true} {
			if err := s.EndSpend(ctx, hash, spent); err != nil {
				t.Errorf("EndSpend(%v): %v", spent, err)
			}
		}
		// EndSpend must not have brought the token into being.
		if _, err := s.BeginSpend(ctx, hash, u); !errors.Is(err, recovery.ErrNotFound) {
			t.Errorf("BeginSpend after EndSpend: got %v, want ErrNotFound", err)
		}
	})
}

// Policies the lock tests strike under, in units u of the suite's time.
func clientPolicy(u time.Duration) recovery.Policy {
	return recovery.Policy{Threshold: 3, Window: 10 * u, Duration: 5 * u, MaxDuration: 5 * u}
}

func runPolicy(u time.Duration) recovery.Policy {
	return recovery.Policy{Threshold: 2, Window: 100 * u, Duration: u, MaxDuration: 4 * u, Run: true, Permanent: 10}
}

func runLocks(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()

	t.Run("ThresholdSetsLock", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		p := clientPolicy(u)
		const ip = "192.0.2.1"
		for i := 1; i <= 2; i++ {
			st := mustStrike(t, s, recovery.KindIP, ip, p)
			if st.Refused || st.Set || st.Lock.Strikes != int64(i) {
				t.Fatalf("strike %d: got %+v, want counted, no lock, %d strikes", i, st, i)
			}
		}
		assertLock(t, s, recovery.KindIP, ip, nil)
		now := clk.Now()
		st := mustStrike(t, s, recovery.KindIP, ip, p)
		if !st.Set || st.Refused || st.Lock.Locks != 1 {
			t.Fatalf("third strike: got %+v, want the lock set", st)
		}
		if d := st.Lock.Until.Sub(now); d < 5*u-u/2 || d > 5*u+u/2 {
			t.Errorf("lock lasts %s, want %s", d, 5*u)
		}
		assertLock(t, s, recovery.KindIP, ip, &st.Lock)
		assertLock(t, s, recovery.KindAccount, ip, nil)
		assertLocks(t, s, recovery.KindIP, st.Lock)
		if again := mustStrike(t, s, recovery.KindIP, ip, p); !again.Refused || again.Set {
			t.Errorf("strike while locked: got %+v, want refused", again)
		}
		clk.Advance(6 * u)
		assertLock(t, s, recovery.KindIP, ip, nil)
		assertLocks(t, s, recovery.KindIP)
		// A client's record ends with its window and its block: it starts
		// afresh.
		if st := mustStrike(t, s, recovery.KindIP, ip, p); st.Refused || st.Set || st.Lock.Strikes != 1 || st.Lock.Locks != 0 {
			t.Errorf("strike after the block: got %+v, want a fresh count of 1", st)
		}
	})

	t.Run("WindowEndsCount", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		p := clientPolicy(u)
		p.Window = 2 * u
		mustStrike(t, s, recovery.KindIP, "192.0.2.2", p)
		mustStrike(t, s, recovery.KindIP, "192.0.2.2", p)
		clk.Advance(3 * u)
		if st := mustStrike(t, s, recovery.KindIP, "192.0.2.2", p); st.Set || st.Lock.Strikes != 1 {
			t.Errorf("strike in a new window: got %+v, want count 1 and no lock", st)
		}
	})

	t.Run("RunOutlivesWindowsAndLocks", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		p := runPolicy(u)
		p.Window = 2 * u
		const a = "alice@example.com"
		mustStrike(t, s, recovery.KindAccount, a, p)
		clk.Advance(3 * u) // the window ends; the run does not
		if st := mustStrike(t, s, recovery.KindAccount, a, p); st.Set || st.Lock.Strikes != 2 {
			t.Fatalf("second strike in a new window: got %+v, want 2 in a row and no lock", st)
		}
		// Each lock of the run doubles, up to the longest. The second
		// strike left one in the window, so the first lock comes next.
		for i, want := range []time.Duration{u, 2 * u, 4 * u, 4 * u} {
			if i > 0 {
				if st := mustStrike(t, s, recovery.KindAccount, a, p); st.Set || st.Refused {
					t.Fatalf("first strike after lock %d: got %+v, want counted", i, st)
				}
			}
			now := clk.Now()
			st := mustStrike(t, s, recovery.KindAccount, a, p)
			if !st.Set || st.Lock.Locks != int64(i+1) || st.Lock.Permanent {
				t.Fatalf("lock %d: got %+v, want it set", i+1, st)
			}
			if d := st.Lock.Until.Sub(now); d < want-u/2 || d > want+u/2 {
				t.Errorf("lock %d lasts %s, want %s", i+1, d, want)
			}
			clk.Advance(want + u)
		}
		// Strike 10 in a row (of p.Permanent 10) locks for good.
		st := mustStrike(t, s, recovery.KindAccount, a, p)
		if !st.Set || !st.Lock.Permanent || st.Lock.Strikes != 10 {
			t.Fatalf("strike %d: got %+v, want the 10th to lock for good", st.Lock.Strikes, st)
		}
		clk.Advance(10 * u)
		if again := mustStrike(t, s, recovery.KindAccount, a, p); !again.Refused {
			t.Errorf("strike after every lock would have ended: got %+v, want refused", again)
		}
		locks, err := s.ListLocks(ctx, recovery.KindAccount)
		if err != nil || len(locks) != 1 || !locks[0].Permanent || locks[0].Key != a {
			t.Errorf("ListLocks: got %+v, %v, want alice's permanent lock", locks, err)
		}
		if lifted, err := s.EndRun(ctx, recovery.KindAccount, a); !lifted || err != nil {
			t.Errorf("EndRun: got %v, %v, want true, nil", lifted, err)
		}
		assertLock(t, s, recovery.KindAccount, a, nil)
		if st := mustStrike(t, s, recovery.KindAccount, a, p); st.Refused || st.Lock.Strikes != 1 || st.Lock.Locks != 0 {
			t.Errorf("strike after EndRun: got %+v, want a fresh run", st)
		}
	})

	t.Run("Forgive", func(t *testing.T) {
		t.Parallel()
		s, _ := h.New(t)
		p := clientPolicy(u)
		const ip = "2001:db8::/64"
		mustStrike(t, s, recovery.KindIP, ip, p)
		mustStrike(t, s, recovery.KindIP, ip, p)
		if err := Forgive(ctx, s, recovery.KindIP, ip, p); err != nil {
			t.Fatal(err)
		}
		// Two strikes less one: the next two make three.
		if st := mustStrike(t, s, recovery.KindIP, ip, p); st.Set || st.Lock.Strikes != 2 {
			t.Errorf("strike after Forgive: got %+v, want 2 and no lock", st)
		}
		if st := mustStrike(t, s, recovery.KindIP, ip, p); !st.Set {
			t.Errorf("third strike: got %+v, want the lock", st)
		}
		// A lock in force is not forgiven.
		if err := Forgive(ctx, s, recovery.KindIP, ip, p); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := GetLock(ctx, s, recovery.KindIP, ip); !ok {
			t.Error("Forgive lifted a lock")
		}
		if err := Forgive(ctx, s, recovery.KindIP, "192.0.2.99", p); err != nil {
			t.Errorf("Forgive of an unknown key: %v", err)
		}
	})

	t.Run("ConcurrentStrikesNeverPassThreshold", func(t *testing.T) {
		t.Parallel()
		s, _ := h.New(t)
		p := runPolicy(u)
		p.Threshold, p.Duration, p.MaxDuration = 5, 100*u, 100*u
		var counted, set, refused atomic.Int64
		concurrently(200, func(int) {
			st, err := Strike(ctx, s, recovery.KindAccount, "target@example.com", p)
			switch {
			case err != nil:
				t.Errorf("Strike: %v", err)
			case st.Refused:
				refused.Add(1)
			default:
				counted.Add(1)
				if st.Set {
					set.Add(1)
				}
			}
		})
		if counted.Load() != 5 || set.Load() != 1 || refused.Load() != 195 {
			t.Errorf("200 concurrent strikes at threshold 5: %d counted, %d set a lock, %d refused; want 5, 1, 195",
				counted.Load(), set.Load(), refused.Load())
		}
	})

	t.Run("ListOrder", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		p := clientPolicy(u)
		p.Threshold = 1
		var want []recovery.Lock
		for _, k := range []string{"b", "a"} {
			want = append(want, mustStrike(t, s, recovery.KindAccount, k+"@example.com", p).Lock)
		}
		clk.Advance(u)
		want = append(want, mustStrike(t, s, recovery.KindAccount, "c@example.com", p).Lock)
		perm := runPolicy(u)
		perm.Permanent = 1
		permanent := mustStrike(t, s, recovery.KindAccount, "0@example.com", perm).Lock
		ip := mustStrike(t, s, recovery.KindIP, "192.0.2.3", p).Lock
		// a and b may have been locked in the same instant: then by key.
		limiter.SortLocks(want[:2])
		assertLocks(t, s, recovery.KindAccount, append(want, permanent)...)
		assertLocks(t, s, recovery.KindIP, ip)
		assertLocks(t, s, "other")
		if lifted, err := s.EndRun(ctx, recovery.KindAccount, "nobody@example.com"); lifted || err != nil {
			t.Errorf("EndRun of an unknown key: got %v, %v, want false, nil", lifted, err)
		}
	})
}

func mustStrike(t *testing.T, s Store, kind, key string, p recovery.Policy) recovery.Strike {
	t.Helper()
	st, err := Strike(context.Background(), s, kind, key, p)
	if err != nil {
		t.Fatalf("Strike(%s, %s): %v", kind, key, err)
	}
	return st
}

// Benchmark measures the hot paths of the store h builds: counting an
// attempt, and holding and releasing a token, from parallel callers.
func Benchmark(b *testing.B, h Harness) {
	ctx := context.Background()

	b.Run("Attempt", func(b *testing.B) {
		s, clk := h.New(b)
		if err := CreateFlow(ctx, s, newFlow("f1", clk, time.Hour)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := Attempt(ctx, s, "f1", 1<<30); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("Spend", func(b *testing.B) {
		s, clk := h.New(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			tok := newToken(fmt.Sprint(n.Add(1)), clk, time.Hour)
			if err := PutToken(ctx, s, tok); err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if _, err := s.BeginSpend(ctx, tok.Hash, time.Minute); err != nil {
					b.Error(err)
					return
				}
				if err := s.EndSpend(ctx, tok.Hash, false); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// concurrently runs f(0) … f(n-1) in n goroutines released together, and
// waits for them.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

func mustCreate(t *testing.T, s Store, f recovery.Flow) {
	t.Helper()
	if err := CreateFlow(context.Background(), s, f); err != nil {
		t.Fatalf("CreateFlow: %v", err)
	}
}

func mustPut(t *testing.T, s Store, tok recovery.Token) {
	t.Helper()
	if err := PutToken(context.Background(), s, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
}

// assertFlow compares flows field by field, times by instant.
func assertFlow(t *testing.T, got, want recovery.Flow) {
	t.Helper()
	if !got.SentAt.Equal(want.SentAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("flow times: got sent %v, expires %v, created %v; want %v, %v, %v",
			got.SentAt, got.ExpiresAt, got.CreatedAt, want.SentAt, want.ExpiresAt, want.CreatedAt)
	}
	got.SentAt, got.ExpiresAt, got.CreatedAt = time.Time{}, time.Time{}, time.Time{}
	want.SentAt, want.ExpiresAt, want.CreatedAt = time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flow: got %+v, want %+v", got, want)
	}
}

func assertToken(t *testing.T, got, want recovery.Token) {
	t.Helper()
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("token expiry: got %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
	got.ExpiresAt, want.ExpiresAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("token: got %+v, want %+v", got, want)
	}
}

// assertLock checks GetLock of kind and key against want, nil for none.
func assertLock(t *testing.T, s Store, kind, key string, want *recovery.Lock) {
	t.Helper()
	got, ok, err := GetLock(context.Background(), s, kind, key)
	switch {
	case err != nil:
		t.Errorf("GetLock(%s, %s): %v", kind, key, err)
	case want == nil && ok:
		t.Errorf("GetLock(%s, %s): got %+v, want none", kind, key, got)
	case want != nil && !ok:
		t.Errorf("GetLock(%s, %s): got none, want %+v", kind, key, *want)
	case want != nil && !sameLock(got, *want):
		t.Errorf("GetLock(%s, %s): got %+v, want %+v", kind, key, got, *want)
	}
}

// assertLocks checks ListLocks of kind against want, in order.
func assertLocks(t *testing.T, s Store, kind string, want ...recovery.Lock) {
	t.Helper()
	got, err := s.ListLocks(context.Background(), kind)
	if err != nil {
		t.Errorf("ListLocks(%s): %v", kind, err)
		return
	}
	if !slices.EqualFunc(got, want, sameLock) {
		t.Errorf("ListLocks(%s): got %+v, want %+v", kind, got, want)
	}
}

func sameLock(a, b recovery.Lock) bool {
	return a.Kind == b.Kind && a.Key == b.Key && a.Since.Equal(b.Since) && a.Until.Equal(b.Until) &&
		a.Permanent == b.Permanent && a.Strikes == b.Strikes && a.Locks == b.Locks && a.Reason == b.Reason
}
