package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/tests"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestCounterTable checks the counters a Store's plans keep: fixed windows
// that start afresh once over, a bound that drops the least recently used
// (a read counts as a use), and reads that make no counter.
func TestCounterTable(t *testing.T) {
	t.Parallel()
	keys := newHasher()
	key := func(i int) hkey { return keys.scoped(limiter.ScopeStartIP, fmt.Sprint(i)) }
	c := ulimiter.Rate{Limit: 3, Period: time.Minute}
	now := time.Unix(1_800_000_000, 0)
	tab := newCounterTable(3, false)

	if s := tab.count(key(0), c, 0, now); s.Remaining != 3 || tab.Len() != 0 {
		t.Fatalf("a read of a missing counter: %+v, %d held", s, tab.Len())
	}
	for n := int64(1); n <= 4; n++ {
		want := ulimiter.Context{Limit: 3, Remaining: max(0, 3-n), Reset: now.Add(time.Minute).Unix(), Reached: n > 3}
		if s := tab.count(key(0), c, 1, now); s != want {
			t.Fatalf("count %d: %+v, want %+v", n, s, want)
		}
	}
	if s := tab.count(key(0), c, 1, now.Add(time.Minute)); s.Remaining != 2 {
		t.Fatalf("a new window: %+v", s)
	}
	if s := tab.count(keys.scoped(limiter.ScopeVerifyIP, "0"), c, 0, now); s.Remaining != 3 {
		t.Fatalf("another scope shares the counter: %+v", s)
	}

	// Full at 3: 0, 1, 2 held, 0 the oldest. Reading 0 makes 1 the oldest,
	// which the next counter evicts.
	tab.count(key(1), c, 1, now)
	tab.count(key(2), c, 1, now)
	tab.count(key(0), c, 0, now)
	tab.count(key(3), c, 1, now)
	if tab.Len() != 3 {
		t.Fatalf("%d counters held, want the bound 3", tab.Len())
	}
	held := func(i int) bool { _, ok := tab.index[key(i)]; return ok }
	if held(1) || !held(0) || !held(2) || !held(3) {
		t.Fatalf("after eviction: 0 %v, 1 %v, 2 %v, 3 %v; want 1 gone", held(0), held(1), held(2), held(3))
	}
	if s := tab.count(key(1), c, 1, now); s.Remaining != 2 {
		t.Fatalf("an evicted counter starts afresh: %+v", s)
	}
	// 2 was the oldest then: it went for 1.
	if held(2) || !held(0) || !held(3) {
		t.Fatalf("second eviction took the wrong counter")
	}
	// The list stays whole under churn: every slot is on it once.
	for i := range 100 {
		tab.count(key(i%7), c, 1, now)
		seen := 0
		for s := tab.newest; s != none; s = tab.slots[s].older {
			seen++
		}
		if seen != tab.Len() || tab.Len() > 3 {
			t.Fatalf("step %d: %d on the list, %d held", i, seen, tab.Len())
		}
	}
}

// TestCounterTableKeeps checks a table of budgets: no churn drops a counter
// whose window is open; a counter whose window ended makes room, and a new
// one is refused, with the end of the oldest window, when none has.
func TestCounterTableKeeps(t *testing.T) {
	t.Parallel()
	keys := newHasher()
	key := func(i int) hkey { return keys.scoped(limiter.ScopeStartAccount, fmt.Sprint(i)) }
	c := ulimiter.Rate{Limit: 3, Period: time.Minute}
	now := time.Unix(1_800_000_000, 0)
	tab := newCounterTable(3, true)
	add := func(i int, at time.Time) {
		t.Helper()
		if _, ok := tab.room(1, 0, at); !ok {
			t.Fatalf("no room for counter %d", i)
		}
		tab.count(key(i), c, 1, at)
	}
	add(0, now)
	add(1, now.Add(10*time.Second))
	add(2, now.Add(20*time.Second))
	// A churn of new keys: refused, with the end of the oldest window.
	for i := 3; i < 100; i++ {
		if at, ok := tab.room(1, 0, now.Add(30*time.Second)); ok || !at.Equal(now.Add(time.Minute)) {
			t.Fatalf("room for counter %d in a full table: %v %v, want none until %v", i, at, ok, now.Add(time.Minute))
		}
	}
	if s := tab.count(key(0), c, 1, now.Add(30*time.Second)); s.Remaining != 1 {
		t.Fatalf("the oldest budget after the churn: %+v, want its count kept", s)
	}
	// 0's window ends; it is counted again, opening a new window: it moves
	// behind 2, and 1 is the oldest.
	tab.count(key(0), c, 1, now.Add(61*time.Second))
	if at, ok := tab.room(1, 0, now.Add(75*time.Second)); !ok || tab.holds(key(1)) || !tab.holds(key(0)) || !tab.holds(key(2)) {
		t.Fatalf("room once 1's window ended: %v %v; held 0 %v, 1 %v, 2 %v", at, ok, tab.holds(key(0)), tab.holds(key(1)), tab.holds(key(2)))
	}
	tab.count(key(3), c, 1, now.Add(75*time.Second))
	// At 90s 2's window has ended and goes for a new counter; with 0 and 3
	// open there is no room for one more and a spare slot.
	if _, ok := tab.room(1, 0, now.Add(90*time.Second)); !ok || tab.holds(key(2)) {
		t.Fatal("room for one, once 2's window ended")
	}
	if _, ok := tab.room(1, 1, now.Add(90*time.Second)); ok {
		t.Fatal("room for one and a spare in a table of three holding two open windows")
	}
	seen := 0
	for s := tab.newest; s != none; s = tab.slots[s].older {
		seen++
	}
	if seen != tab.Len() {
		t.Fatalf("%d on the list, %d held", seen, tab.Len())
	}
}

// TestMemoryULuleStore runs ulule's own suite of a limiter.Store against
// a Store, on the wall clock that suite reads.
func TestMemoryULuleStore(t *testing.T) {
	t.Parallel()
	newMemory := func(t *testing.T) *Store {
		m, err := New(1000, clock.Real{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()
		tests.TestStoreSequentialAccess(t, newMemory(t))
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		tests.TestStoreConcurrentAccess(t, newMemory(t))
	})
}

// TestMemoryULuleStoreKeepsBudgets checks that the ulimiter.Store methods
// count a budget (limiter.Kept) in the table that keeps, with its room: a
// budget that finds none is refused, and a client's counter evicts.
func TestMemoryULuleStoreKeepsBudgets(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Unix(1_800_000_000, 0))
	m, err := New(1, clk)
	if err != nil {
		t.Fatal(err)
	}
	m.budgets = newCounterTable(2, true)
	m.counters = newCounterTable(2, false)
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 3, Period: time.Minute}
	for i := range 2 {
		if _, err := m.Get(ctx, fmt.Sprintf("%s:p%d", limiter.ScopeStartPhone, i), rate); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(ctx, limiter.ScopeStartPhone+":p2", rate); !errors.Is(err, recovery.ErrFull) {
		t.Fatalf("a third budget in a table of two: %v, want ErrFull", err)
	}
	if got, err := m.Peek(ctx, limiter.ScopeStartPhone+":p2", rate); err != nil || got.Remaining != 3 {
		t.Fatalf("a peek needs no room: %+v, %v", got, err)
	}
	if got, err := m.Get(ctx, limiter.ScopeStartPhone+":p0", rate); err != nil || got.Remaining != 1 {
		t.Fatalf("a budget held: %+v, %v; want counted", got, err)
	}
	for i := range 3 {
		if _, err := m.Get(ctx, fmt.Sprintf("%s:c%d", limiter.ScopeStartIP, i), rate); err != nil {
			t.Fatalf("client counter %d: %v", i, err)
		}
	}
	if m.counters.Len() != 2 || m.counters.letGo != 1 || m.budgets.Len() != 2 {
		t.Fatalf("%d client counters (%d let go), %d budgets; want 2 (1), 2", m.counters.Len(), m.counters.letGo, m.budgets.Len())
	}
	clk.Advance(time.Minute)
	if _, err := m.Get(ctx, limiter.ScopeStartPhone+":p2", rate); err != nil {
		t.Fatalf("a budget once the windows ended: %v", err)
	}
}
