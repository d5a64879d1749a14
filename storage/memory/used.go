package memory

import (
	"context"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// usedTable holds the single-use keys marked used (Store.UseOnce), each
// until its end. A mark is security state: none is dropped before its end,
// and a full table refuses a new one.
type usedTable struct {
	ends  map[string]time.Time
	bound int
}

// UseOnce marks key used until until, under the mutex, and reports whether
// this call did. With MaxEntries marks in force, it refuses a new one with
// recovery.ErrFull rather than forget one.
func (m *Store) UseOnce(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	u := &m.used
	if end, ok := u.ends[key]; ok && now.Before(end) {
		return false, nil
	}
	if !now.Before(until) {
		return true, nil // nothing to remember: it could not be used again anyway
	}
	if len(u.ends) >= u.bound {
		for k, end := range u.ends {
			if !now.Before(end) {
				delete(u.ends, k)
			}
		}
		if len(u.ends) >= u.bound {
			return false, recovery.ErrFull
		}
	}
	u.ends[key] = until
	return true, nil
}

// Used reports whether key is marked used, under the mutex.
func (m *Store) Used(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	end, ok := m.used.ends[key]
	if ok && !m.clock.Now().Before(end) {
		delete(m.used.ends, key)
		return false, nil
	}
	return ok, nil
}
