package storage

import (
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// lockTable holds the security state of Memory: at most max records of
// strikes and locks. It never drops a record that still counts to make
// room: when it is full, a strike that needs a new record is refused with
// recovery.ErrFull, and only records that have ended (a client's window and
// block both over) are swept out, at most once per sweepEvery so that a
// flood against a full table costs no more than the refusal.
//
// It is not safe for concurrent use; Memory guards it with its mutex.
type lockTable struct {
	max       int
	records   map[lockID]*lockRecord
	lastSweep time.Time
}

type lockID struct{ kind, key string }

// lockRecord is a record and when it may go (the zero time: never).
type lockRecord struct {
	limiter.Record
	expires time.Time
}

// sweepEvery is the least time between two sweeps of a full table.
const sweepEvery = time.Second

func newLockTable(max int) *lockTable {
	return &lockTable{max: max, records: make(map[lockID]*lockRecord)}
}

// get returns the live record of kind and key, dropping an ended one.
func (t *lockTable) get(id lockID, now time.Time) *lockRecord {
	r := t.records[id]
	if r != nil && !r.expires.IsZero() && !now.Before(r.expires) {
		delete(t.records, id)
		return nil
	}
	return r
}

// room reports whether a new record fits, sweeping ended ones if the
// table is full and the last sweep is long enough ago.
func (t *lockTable) room(now time.Time) bool {
	if len(t.records) < t.max {
		return true
	}
	if now.Sub(t.lastSweep) < sweepEvery {
		return false
	}
	t.lastSweep = now
	for id, r := range t.records {
		if !r.expires.IsZero() && !now.Before(r.expires) {
			delete(t.records, id)
		}
	}
	return len(t.records) < t.max
}
