package limiter

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func newTestLRU(t testing.TB, maxKeys int) (*LRUStore, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(t0)
	s, err := NewLRUStore(maxKeys, clk)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestNewLRUStoreRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		maxKeys int
		clock   recovery.Clock
	}{
		{"zero bound", 0, clock.Real{}},
		{"negative bound", -1, clock.Real{}},
		{"nil clock", 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if s, err := NewLRUStore(tc.maxKeys, tc.clock); err == nil {
				t.Fatalf("NewLRUStore(%d) = %v, want an error", tc.maxKeys, s)
			}
		})
	}
}

// TestLRUStoreMatchesUlule runs one sequence of calls against this store and
// ulule's memory store, on the real clock, and wants the same answers.
func TestLRUStoreMatchesUlule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 3, Period: time.Hour}
	ours, err := NewLRUStore(10, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	theirs := memory.NewStoreWithOptions(ulimiter.StoreOptions{Prefix: "test"}) // no cleaner goroutine

	type op struct {
		name string
		call func(ulimiter.Store) (ulimiter.Context, error)
	}
	get := op{"get", func(s ulimiter.Store) (ulimiter.Context, error) { return s.Get(ctx, "k", rate) }}
	peek := op{"peek", func(s ulimiter.Store) (ulimiter.Context, error) { return s.Peek(ctx, "k", rate) }}
	reset := op{"reset", func(s ulimiter.Store) (ulimiter.Context, error) { return s.Reset(ctx, "k", rate) }}
	incr := op{"increment 2", func(s ulimiter.Store) (ulimiter.Context, error) { return s.Increment(ctx, "k", 2, rate) }}
	seq := []op{peek, get, peek, get, get, get, peek, get, reset, peek, incr, get, get, reset, reset, get}

	for i, o := range seq {
		want, err := o.call(theirs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.call(ours)
		if err != nil {
			t.Fatal(err)
		}
		if got.Limit != want.Limit || got.Remaining != want.Remaining || got.Reached != want.Reached {
			t.Errorf("step %d (%s): got %+v, ulule %+v", i, o.name, got, want)
		}
		if d := got.Reset - want.Reset; d < -1 || d > 1 {
			t.Errorf("step %d (%s): reset %d, ulule %d", i, o.name, got.Reset, want.Reset)
		}
	}
}

func TestLRUStoreWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 3, Period: time.Minute}
	end := t0.Add(time.Minute).Unix()

	type step struct {
		name    string
		advance time.Duration // before the call
		call    string        // get, peek, reset or inc (by 2)
		want    ulimiter.Context
	}
	steps := []step{
		{"fresh peek", 0, "peek", ulimiter.Context{Limit: 3, Remaining: 3, Reset: end}},
		{"first", 0, "get", ulimiter.Context{Limit: 3, Remaining: 2, Reset: end}},
		{"peek does not count", 0, "peek", ulimiter.Context{Limit: 3, Remaining: 2, Reset: end}},
		{"second", 10 * time.Second, "get", ulimiter.Context{Limit: 3, Remaining: 1, Reset: end}},
		{"last allowed", 0, "get", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end}},
		{"peek at the limit", 0, "peek", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end}},
		{"first refused", 0, "get", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end, Reached: true}},
		{"still refused just before the end", 50*time.Second - time.Nanosecond, "get", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end, Reached: true}},
		{"first of the next window", time.Nanosecond, "get", ulimiter.Context{Limit: 3, Remaining: 2, Reset: end + 60}},
		{"increment by two", 0, "inc", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end + 60}},
		{"over by increment", 0, "inc", ulimiter.Context{Limit: 3, Remaining: 0, Reset: end + 60, Reached: true}},
		{"reset", 30 * time.Second, "reset", ulimiter.Context{Limit: 3, Remaining: 3, Reset: end + 90}},
		{"peek after reset", 0, "peek", ulimiter.Context{Limit: 3, Remaining: 3, Reset: end + 90}},
		{"reset opens a new window", 0, "get", ulimiter.Context{Limit: 3, Remaining: 2, Reset: end + 90}},
	}

	s, clk := newTestLRU(t, 10)
	for _, st := range steps {
		clk.Advance(st.advance)
		var got ulimiter.Context
		var err error
		switch st.call {
		case "get":
			got, err = s.Get(ctx, "k", rate)
		case "peek":
			got, err = s.Peek(ctx, "k", rate)
		case "reset":
			got, err = s.Reset(ctx, "k", rate)
		case "inc":
			got, err = s.Increment(ctx, "k", 2, rate)
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
}

func TestLRUStoreKeysAreIndependent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 1, Period: time.Minute}
	s, _ := newTestLRU(t, 10)
	if c, _ := s.Get(ctx, "a", rate); c.Reached {
		t.Fatal("first event for a refused")
	}
	if c, _ := s.Get(ctx, "b", rate); c.Reached {
		t.Fatal("first event for b refused after a's")
	}
	if c, _ := s.Get(ctx, "a", rate); !c.Reached {
		t.Fatal("second event for a allowed")
	}
}

func TestLRUStoreBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 100, Period: time.Hour}
	count := func(s *LRUStore, key string) int64 {
		c, _ := s.Peek(ctx, key, rate)
		return rate.Limit - c.Remaining
	}

	t.Run("never holds more than the bound", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestLRU(t, 100)
		for i := range 1000 {
			_, _ = s.Get(ctx, fmt.Sprint(i), rate)
			if s.Len() > 100 {
				t.Fatalf("after %d keys the store holds %d", i+1, s.Len())
			}
		}
		if got := count(s, "999"); got != 1 {
			t.Errorf("newest key counts %d, want 1", got)
		}
		if got := count(s, "0"); got != 0 {
			t.Errorf("oldest key counts %d after eviction, want 0", got)
		}
	})

	for _, touch := range []string{"get", "peek"} {
		t.Run(touch+" keeps a key from eviction", func(t *testing.T) {
			t.Parallel()
			s, _ := newTestLRU(t, 2)
			_, _ = s.Increment(ctx, "budget", 5, rate)
			_, _ = s.Get(ctx, "x", rate)
			if touch == "get" {
				_, _ = s.Get(ctx, "budget", rate)
			} else {
				_, _ = s.Peek(ctx, "budget", rate)
			}
			_, _ = s.Get(ctx, "y", rate) // evicts the least recently used
			want := int64(5)
			if touch == "get" {
				want = 6
			}
			if got := count(s, "budget"); got != want {
				t.Errorf("budget counts %d, want %d", got, want)
			}
			if got := count(s, "x"); got != 0 {
				t.Errorf("x counts %d, want 0 (evicted)", got)
			}
		})
	}
}

func TestLRUStoreConcurrentCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 1 << 20, Period: time.Hour}
	s, _ := newTestLRU(t, 10)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := s.Get(ctx, "k", rate); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c, _ := s.Peek(ctx, "k", rate)
	if got := rate.Limit - c.Remaining; got != workers*each {
		t.Fatalf("counted %d events, want %d", got, workers*each)
	}
}
