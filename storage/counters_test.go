package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// TestCounterTable checks the counters Memory's plans keep: fixed windows
// that start afresh once over, a bound that drops the least recently used
// (a read counts as a use), and reads that make no counter.
func TestCounterTable(t *testing.T) {
	t.Parallel()
	keys := newHasher()
	key := func(i int) hkey { return keys.scoped(limiter.ScopeStartIP, fmt.Sprint(i)) }
	c := limiter.Count{Limit: 3, Window: time.Minute}
	now := time.Unix(1_800_000_000, 0)
	tab := newCounterTable(3, false)

	if s := tab.count(key(0), c, 0, now); s.Count != 0 || tab.Len() != 0 {
		t.Fatalf("a read of a missing counter: %+v, %d held", s, tab.Len())
	}
	for want := int64(1); want <= 4; want++ {
		if s := tab.count(key(0), c, 1, now); s.Count != want || !s.Reset.Equal(now.Add(time.Minute)) {
			t.Fatalf("count %d: %+v", want, s)
		}
	}
	if s := tab.count(key(0), c, 1, now.Add(time.Minute)); s.Count != 1 {
		t.Fatalf("a new window: %+v", s)
	}
	if s := tab.count(keys.scoped(limiter.ScopeVerifyIP, "0"), c, 0, now); s.Count != 0 {
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
	if s := tab.count(key(1), c, 1, now); s.Count != 1 {
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
	c := limiter.Count{Limit: 3, Window: time.Minute, Keep: true}
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
	if s := tab.count(key(0), c, 1, now.Add(30*time.Second)); s.Count != 2 {
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
