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
	tab := newCounterTable(3)

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
