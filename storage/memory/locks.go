package memory

import (
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"time"
)

// lockTable holds the security state of a Store: at most max records of
// strikes and locks.
//
// A record that has ever set a lock (a lock in force, a run of locks whose
// next one doubles, a permanent lock) is never dropped to make room: those
// are what SPEC §4 keeps through any flood. The rest are runs of wrong codes
// that never reached a threshold, and when the table is full they are the
// price of a new record: the one with the fewest strikes goes, and of
// those the one struck least recently. So a flood of one wrong code for
// each of many made-up accounts pushes out its own one-strike runs, never a
// lock and never a person's right code (which needs no new record to be
// compared, see Store.RunPlan). What the flood buys is counted in strikes:
// to take back the s strikes of one run, the table must first fill with
// runs of at least s strikes that are newer than it, that is max×s wrong
// codes, after which the attacker may make those s guesses again. Which
// record goes depends on strikes and time alone, never on whether the
// account exists.
//
// Only when every record is a lock, or behind one, does a strike that needs
// a new record find no room (recovery.ErrFull). Records that have ended
// (a client's window and block both over) are swept out when the table is
// full, at most once per sweepEvery so that a flood against a full table
// costs no more than the refusal.
//
// It is not safe for concurrent use; Store guards it with its mutex.
type lockTable struct {
	max       int
	records   map[lockID]*lockRecord
	lastSweep time.Time
	// refused counts the strikes that found no room; letGo, the runs let
	// go to make room.
	refused, letGo uint64
	// cheap[n] lists the records that may make room and hold n strikes
	// (the last holds cheapBuckets or more), least recently struck first.
	cheap [cheapBuckets + 1]list[lockRecord]
}

// cheapBuckets is how many strike counts the table tells apart when it
// chooses a record to let go; runs longer than that are all alike.
const cheapBuckets = 8

type lockID struct{ kind, key string }

// lockRecord is a record, when it may go (the zero time: never), and its
// place among the records that may make room (bucket 0: none).
type lockRecord struct {
	recovery.Record
	expires time.Time
	bucket  int
	//lint:ignore U1000 used through element[T], which staticcheck does not follow
	links[lockRecord] // in cheap[bucket]
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
		t.delete(r)
		return nil
	}
	return r
}

// add stores a new, empty record for id; the caller made room.
func (t *lockTable) add(id lockID) *lockRecord {
	r := &lockRecord{Record: recovery.Record{Lock: recovery.Lock{Kind: id.kind, Key: id.key}}}
	t.records[id] = r
	return r
}

// delete drops r.
func (t *lockTable) delete(r *lockRecord) {
	if r.bucket > 0 {
		unlink(&t.cheap[r.bucket], r)
		r.bucket = 0
	}
	delete(t.records, lockID{r.Kind, r.Key})
}

// changed files r again after a strike, a forgiven one or a lock support
// imposed: as the most recently struck of its bucket, or in none once a
// lock was ever set on it.
func (t *lockTable) changed(r *lockRecord) {
	if r.bucket > 0 {
		unlink(&t.cheap[r.bucket], r)
		r.bucket = 0
	}
	// A lock ever set (by wrong codes or by support) leaves Until behind.
	if r.Locks > 0 || r.Permanent || !r.Until.IsZero() || r.Strikes <= 0 {
		return
	}
	r.bucket = int(min(r.Strikes, cheapBuckets))
	push(&t.cheap[r.bucket], r)
}

// room reports whether a new record fits: sweeping ended records if the
// table is full and the last sweep is long enough ago, and then letting go
// of the cheapest record, if any may go.
func (t *lockTable) room(now time.Time) bool {
	if len(t.records) < t.max {
		return true
	}
	if now.Sub(t.lastSweep) >= sweepEvery {
		t.lastSweep = now
		for _, r := range t.records {
			if !r.expires.IsZero() && !now.Before(r.expires) {
				t.delete(r)
			}
		}
		if len(t.records) < t.max {
			return true
		}
	}
	for n := 1; n <= cheapBuckets; n++ {
		if r := t.cheap[n].first; r != nil {
			t.delete(r)
			t.letGo++
			return true
		}
	}
	t.refused++
	return false
}

// Len returns how many records the table holds, ended ones included.
func (t *lockTable) Len() int { return len(t.records) }
