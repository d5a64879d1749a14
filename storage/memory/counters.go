package memory

import (
	"context"
	"fmt"
	"strings"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// counterTable is a bounded table of fixed-window rate counters, which
// Store's plans and its ulimiter.Store methods count in: at most bound
// counters, keyed by the hkey of their key (scope:key). It runs in one of
// two modes.
//
// A table of client counters (start_ip, verify_ip) drops the least
// recently used counter to make room. Evicting one resets it, which hands
// a client back its own budget and nothing else: every use moves a counter
// to the front, so one goes only after bound other counters were made or
// used since its own last use, and no account, phone or global budget is
// kept here.
//
// A table that keeps (keep set; start_account, start_phone, sms_global)
// never drops a counter whose window is open, so that no churn of the
// table hands back a start or an SMS (SPEC §4). Its counters are listed in
// the order their windows opened, so that the ones whose windows ended,
// which alone may make room, are at its front; when none has ended a new
// counter is refused (see room) and the plan asking for it with it, before
// anything is counted.
//
// The counters sit in one slice, linked by index in order of use, with a
// map from key to index: about 80 bytes a counter, where a general LRU
// cache of string keys takes some 150 (BenchmarkMemoryFlood). It is not
// safe for concurrent use; Store guards it with its mutex.
type counterTable struct {
	bound int
	keep  bool
	index map[hkey]int32
	slots []counterSlot
	// newest and oldest are the most and least recently used (or opened)
	// slots, or none when the table is empty.
	newest, oldest int32
	// refused counts the plans refused for room (keep); letGo, the
	// counters dropped for room (clients').
	refused, letGo uint64
}

// counterSlot is one counter and its neighbours in order of use: newer
// towards newest, older towards oldest.
type counterSlot struct {
	key          hkey
	w            window
	newer, older int32
}

// window is one counter's fixed window: n events in the window ending at
// end (Unix nanoseconds; it has ended once now >= end).
type window struct{ n, end int64 }

// none marks the end of the list of slots.
const none int32 = -1

func newCounterTable(bound int, keep bool) *counterTable {
	return &counterTable{bound: max(1, bound), keep: keep, index: make(map[hkey]int32), newest: none, oldest: none}
}

// count counts n events (0 to read) in the counter of key at now, a fixed
// window of rate.Period opening at its first event, and returns its state
// as ulule's stores give it: rate.Limit, what remains of it, whether it was
// exceeded, and the window's end in Unix seconds. It is the one counter
// step of Store: its plans' counts and its ulimiter.Store methods both
// take it.
//
// In a table of client counters a count marks the counter as recently
// used; in a table that keeps, a window that opens afresh moves it to the
// newest. A read of a counter the table does not hold makes none. A table
// that keeps must have room for a counter it does not hold (room).
func (t *counterTable) count(key hkey, rate ulimiter.Rate, n int64, now time.Time) ulimiter.Context {
	w, _ := t.step(key, rate.Period, n, now)
	return common.GetContextFromState(now, rate, time.Unix(0, w.end), w.n)
}

// step is count's step on a window of period: it returns the counter's
// window after n events, and whether this step opened it.
func (t *counterTable) step(key hkey, period time.Duration, n int64, now time.Time) (window, bool) {
	i, held := t.index[key]
	var w window
	if held {
		w = t.slots[i].w
	}
	opened := now.UnixNano() >= w.end
	if opened {
		w = window{end: now.Add(period).UnixNano()}
	}
	w.n += n
	switch {
	case held:
		t.slots[i].w = w
		if !t.keep || opened {
			t.touch(i)
		}
	case w.n > 0:
		t.add(key, w)
	}
	return w, opened
}

// forget drops the counter of key, if the table holds it.
func (t *counterTable) forget(key hkey) {
	if i, ok := t.index[key]; ok {
		t.drop(i)
	}
}

// holds reports whether the table holds a counter for key.
func (t *counterTable) holds(key hkey) bool {
	_, ok := t.index[key]
	return ok
}

// room makes room in a table that keeps for need new counters beside
// spare free slots, dropping counters whose windows have ended. If there is
// not enough, it returns false and the end of the oldest window.
func (t *counterTable) room(need, spare int, now time.Time) (time.Time, bool) {
	for len(t.index)+need+spare > t.bound {
		o := t.oldest
		if o == none || now.UnixNano() < t.slots[o].w.end {
			t.refused++
			at := now
			if o != none {
				at = time.Unix(0, t.slots[o].w.end)
			}
			return at, false
		}
		t.drop(o)
	}
	return time.Time{}, true
}

// drop takes slot i out of the table, moving the last slot into its place.
func (t *counterTable) drop(i int32) {
	t.unlink(i)
	delete(t.index, t.slots[i].key)
	last := int32(len(t.slots) - 1)
	if i != last {
		moved := t.slots[last]
		t.slots[i] = moved
		t.index[moved.key] = i
		if moved.newer != none {
			t.slots[moved.newer].older = i
		} else {
			t.newest = i
		}
		if moved.older != none {
			t.slots[moved.older].newer = i
		} else {
			t.oldest = i
		}
	}
	t.slots = t.slots[:last]
}

// add stores a counter the table does not hold, as the newest, evicting
// the oldest when the table is full (a table that keeps made room first).
func (t *counterTable) add(key hkey, w window) {
	var i int32
	if len(t.slots) < t.bound {
		i = int32(len(t.slots))
		t.slots = append(t.slots, counterSlot{newer: none, older: none})
	} else {
		i = t.oldest
		t.unlink(i)
		delete(t.index, t.slots[i].key)
		t.letGo++
	}
	t.slots[i].key, t.slots[i].w = key, w
	t.index[key] = i
	t.pushNewest(i)
}

// touch makes slot i the newest.
func (t *counterTable) touch(i int32) {
	if t.newest == i {
		return
	}
	t.unlink(i)
	t.pushNewest(i)
}

func (t *counterTable) pushNewest(i int32) {
	s := &t.slots[i]
	s.newer, s.older = none, t.newest
	if t.newest != none {
		t.slots[t.newest].newer = i
	} else {
		t.oldest = i
	}
	t.newest = i
}

func (t *counterTable) unlink(i int32) {
	s := &t.slots[i]
	if s.newer != none {
		t.slots[s.newer].older = s.older
	} else {
		t.newest = s.older
	}
	if s.older != none {
		t.slots[s.older].newer = s.newer
	} else {
		t.oldest = s.newer
	}
	s.newer, s.older = none, none
}

// Len returns how many counters the table holds, expired ones included.
func (t *counterTable) Len() int { return len(t.index) }

// Get counts one event for key and returns the state of its window, as
// ulule's stores do. A key is scope:key, as the guard names its counters
// (recovery.Count), and its scope picks the table: a plan's count of that
// scope and key is the same counter.
func (m *Store) Get(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return m.Increment(ctx, key, 1, rate)
}

// Increment counts n events for key and returns the state of its window.
// A budget (limiter.Kept) the store does not hold needs room in its table:
// when there is none, recovery.ErrFull.
func (m *Store) Increment(_ context.Context, key string, n int64, rate ulimiter.Rate) (ulimiter.Context, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	t, h := m.counterOf(key)
	if t.keep && n > 0 && !t.holds(h) {
		if _, ok := t.room(1, 0, now); !ok {
			return ulimiter.Context{}, fmt.Errorf("counting: %w", recovery.ErrFull)
		}
	}
	return t.count(h, rate, n, now), nil
}

// Peek returns the state of key's window without counting an event.
func (m *Store) Peek(_ context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, h := m.counterOf(key)
	return t.count(h, rate, 0, m.clock.Now()), nil
}

// Reset forgets key's counter and returns the state of a fresh window.
func (m *Store) Reset(_ context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, h := m.counterOf(key)
	t.forget(h)
	return t.count(h, rate, 0, m.clock.Now()), nil
}

// counterOf returns the table of the counter key (scope:key) and its hkey,
// which is the hkey a plan's count of that scope and key has. m.mu is held.
func (m *Store) counterOf(key string) (*counterTable, hkey) {
	scope, _, _ := strings.Cut(key, ":")
	return m.counterTable(scope), m.flows.keys.of(key)
}

// counterTable returns the table of the counters of scope. m.mu is held.
func (m *Store) counterTable(scope string) *counterTable {
	if limiter.Kept(scope) {
		return m.budgets
	}
	return m.counters
}

// Interface guards
var _ ulimiter.Store = (*Store)(nil)
