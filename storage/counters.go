package storage

import (
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// counterTable is a bounded table of fixed-window rate counters that
// Memory's plans count in: at most bound counters, keyed by the hkey of
// their scope and key. It runs in one of two modes.
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
// safe for concurrent use; Memory guards it with its mutex.
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
	w            limiter.Window
	newer, older int32
}

// none marks the end of the list of slots.
const none int32 = -1

func newCounterTable(bound int, keep bool) *counterTable {
	return &counterTable{bound: max(1, bound), keep: keep, index: make(map[hkey]int32), newest: none, oldest: none}
}

// count counts n events (0 to read) for c at now in the counter of key and
// returns its state. In a table of client counters that marks it as
// recently used; in a table that keeps, a window that opens afresh moves
// it to the newest. A read of a counter the table does not hold makes none.
// A table that keeps must have room for a counter it does not hold (room).
func (t *counterTable) count(key hkey, c limiter.Count, n int64, now time.Time) limiter.CounterState {
	if i, ok := t.index[key]; ok {
		w := &t.slots[i].w
		end := w.End
		s := limiter.CountWindow(w, c, n, now)
		if !t.keep || w.End != end {
			t.touch(i)
		}
		return s
	}
	var w limiter.Window
	s := limiter.CountWindow(&w, c, n, now)
	if w.N > 0 {
		t.add(key, w)
	}
	return s
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
		if o == none || now.UnixNano() < t.slots[o].w.End {
			t.refused++
			at := now
			if o != none {
				at = time.Unix(0, t.slots[o].w.End)
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
func (t *counterTable) add(key hkey, w limiter.Window) {
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
