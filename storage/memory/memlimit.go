package memory

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The soft memory limit.
//
// Left to itself, Go's collector lets the heap grow to twice what is live,
// so a flood that fills a memory store's tables would double the process's
// memory for nothing. Every open memory store therefore reserves the most
// heap its tables can hold at their bounds (footprint), unless its
// soft_memory_limit is off, and the runtime's soft memory limit
// (runtime/debug.SetMemoryLimit) is kept at
//
//	memLimitBase + the reservations
//
// so that the collector works harder, rather than the heap growing, once
// the process nears what its bounds need. At the defaults that is 48 MiB
// and 149 MiB for the tables: about 197 MiB of Go memory, which with the
// binary's own pages keeps the process under 256 MiB however it is
// flooded (docs/performance.md).
//
// The limit is never lower than one the operator set: with GOMEMLIMIT in
// the environment nothing here changes it. It never raises a limit in
// force before the first reservation (Caddy derives one from the cgroup or
// the machine's memory), nor goes below twice the heap live at the last
// collection, so that a heap bigger than expected (a large directory of
// another kind, say) makes the collector run at most as often as it would
// without a limit. When the last reservation is released the limit in
// force before it comes back.
var softLimit struct {
	sync.Mutex
	reserved int64
	before   int64 // the limit before the first reservation
	set      int64 // the limit last set for the reservations
	active   bool  // some reservation is held
}

// memLimitBase is the Go memory the process needs besides the tables: Caddy
// and its config, the phone metadata, the SMS workers and the requests in
// flight.
const memLimitBase = 48 << 20

// reserve adds n bytes to what the soft memory limit allows and
// returns the function that takes them back. It is safe for concurrent use.
func reserve(n int64) (release func()) {
	if n <= 0 || operatorLimit() {
		return func() {}
	}
	softLimit.Lock()
	defer softLimit.Unlock()
	if !softLimit.active {
		softLimit.before = debug.SetMemoryLimit(-1)
		softLimit.active = true
	}
	softLimit.reserved += n
	applyLimit()
	var once sync.Once
	return func() {
		once.Do(func() {
			softLimit.Lock()
			defer softLimit.Unlock()
			softLimit.reserved -= n
			if softLimit.reserved <= 0 {
				softLimit.reserved, softLimit.set, softLimit.active = 0, 0, false
				debug.SetMemoryLimit(softLimit.before)
				return
			}
			applyLimit()
		})
	}
}

// SoftMemoryLimit returns the limit the reservations set, and whether they
// set it (false with GOMEMLIMIT set, or with nothing reserved).
func SoftMemoryLimit() (int64, bool) {
	softLimit.Lock()
	defer softLimit.Unlock()
	return softLimit.set, softLimit.active
}

// operatorLimit reports whether the operator set the limit.
func operatorLimit() bool {
	_, ok := os.LookupEnv("GOMEMLIMIT")
	return ok
}

// applyLimit sets the limit for the reservations; softLimit is held.
func applyLimit() {
	softLimit.set = limitFor(softLimit.reserved)
	debug.SetMemoryLimit(softLimit.set)
}

// limitFor is the limit for reserved bytes; softLimit is held.
func limitFor(reserved int64) int64 {
	limit := max(memLimitBase+reserved, 2*liveHeap())
	return min(limit, softLimit.before)
}

// liveHeap returns the heap found live by the last collection.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(min(s[0].Value.Uint64(), 1<<62))
}

// Bytes a record of each of a store's tables takes at most, with its share
// of the table's index, as TestMemoryFootprint measures them.
const (
	flowRecordBytes    = 410
	tokenRecordBytes   = 350
	lockRecordBytes    = 330
	counterRecordBytes = 90
)

// footprint returns the most heap the tables of a store of maxEntries hold
// once every one is full: 149 MiB at DefaultMaxEntries.
func footprint(maxEntries int) int64 {
	n := int64(maxEntries)
	// Two tables of counters, the clients' and the budgets, and the
	// breaker's.
	return n*(flowRecordBytes+tokenRecordBytes+lockRecordBytes) +
		(2*int64(counterBound(maxEntries))+int64(breakerBound(maxEntries)))*counterRecordBytes
}
