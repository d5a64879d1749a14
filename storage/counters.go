package storage

import (
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// counterTable is the bounded table of fixed-window rate counters that
// Memory's plans count in: at most bound counters, keyed by the hkey of
// their scope and key, the least recently used dropped first.
//
// Evicting a counter resets it, and that is all an attacker gains by
// churning the bound: every use moves a counter to the front, so one goes
// only after bound other counters were made or used since its own last
// use, and locks, blocks and wrong codes live in the lock table, which
// never evicts. Through the default limits a client (an IPv4 address or an
// IPv6 /64) makes at most about 33 counters an hour and at most three per
// request, so flushing the default 250,000 takes some 7,600 addresses and
// over 80,000 requests; each flush buys a targeted account start_account
// more starts, within start_phone and sms_global, and no guess. Since a
// peek counts as a use, the global SMS budget, read on every start, is
// never the counter evicted.
//
// The counters sit in one slice, linked by index in order of use, with a
// map from key to index: about 80 bytes a counter, where a general LRU
// cache of string keys takes some 150 (BenchmarkMemoryFlood). It is not
// safe for concurrent use; Memory guards it with its mutex.
type counterTable struct {
	bound int
	index map[hkey]int32
	slots []counterSlot
	// newest and oldest are the most and least recently used slots, or
	// none when the table is empty.
	newest, oldest int32
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

func newCounterTable(bound int) *counterTable {
	return &counterTable{bound: max(1, bound), index: make(map[hkey]int32), newest: none, oldest: none}
}

// count counts n events (0 to read) for c at now in the counter of key,
// marking it as recently used, and returns its state. A read of a counter
// the table does not hold makes none.
func (t *counterTable) count(key hkey, c limiter.Count, n int64, now time.Time) limiter.CounterState {
	if i, ok := t.index[key]; ok {
		t.touch(i)
		return limiter.CountWindow(&t.slots[i].w, c, n, now)
	}
	var w limiter.Window
	s := limiter.CountWindow(&w, c, n, now)
	if w.N > 0 {
		t.add(key, w)
	}
	return s
}

// add stores a counter the table does not hold, as the newest, evicting
// the oldest when the table is full.
func (t *counterTable) add(key hkey, w limiter.Window) {
	var i int32
	if len(t.slots) < t.bound {
		i = int32(len(t.slots))
		t.slots = append(t.slots, counterSlot{newer: none, older: none})
	} else {
		i = t.oldest
		t.unlink(i)
		delete(t.index, t.slots[i].key)
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
