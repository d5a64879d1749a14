package memory

import (
	"context"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Impose locks kind and key for d, or until EndRun when d is 0, as
// limiter.Impose does, under the mutex. A key the table does not hold
// needs room, as for a strike: when there is none, recovery.ErrFull.
//
// A record made for the lock alone goes when the lock ends; one that also
// keeps a run of wrong codes stays as long as the run, and one that keeps
// a client's window until the later of the window and the lock.
func (m *Store) Impose(_ context.Context, kind, key string, d time.Duration) (recovery.Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	id := lockID{kind, key}
	r := m.locks.get(id, now)
	fresh := r == nil
	if fresh {
		if !m.locks.room(now) {
			return recovery.Lock{}, false, recovery.ErrFull
		}
		r = m.locks.add(id)
	}
	set := limiter.Impose(&r.Record, now, d)
	switch {
	case r.Permanent, !fresh && r.expires.IsZero():
		r.expires = time.Time{}
	case fresh, r.Until.After(r.expires):
		r.expires = r.Until
	}
	m.locks.changed(r) // a lock: never a record to let go
	return r.Lock, set, nil
}
