package limiter

// The decisions every store takes inside a plan, as pure functions of a
// record and the time: the memory store runs them under its mutex, and the
// Redis store runs the same steps in its script.

import (
	"cmp"
	"slices"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// LockDuration is the length of the n-th lock of a run (n from 1).
func LockDuration(p recovery.Policy, n int64) time.Duration {
	growth := time.Duration(2)
	if p.Growth > 0 {
		growth = time.Duration(p.Growth)
	}
	d := p.Duration
	for i := int64(1); i < n && d < p.MaxDuration; i++ {
		if d > p.MaxDuration/growth {
			d = p.MaxDuration
			break
		}
		d *= growth
	}
	return min(d, max(p.MaxDuration, p.Duration))
}

// Strike counts one strike against r at now under p, which is how every
// Store counts: Memory runs it under its mutex, and Redis runs the same
// steps in a script. A lock in force refuses the strike and changes nothing.
func Strike(p recovery.Policy, r *recovery.Record, now time.Time) recovery.Strike {
	if r.InForce(now) {
		return recovery.Strike{Refused: true, Lock: r.Lock}
	}
	if !now.Before(r.WindowEnd) {
		r.InWindow, r.WindowEnd = 0, now.Add(p.Window)
		if !p.Run {
			r.Strikes, r.Locks = 0, 0
		}
	}
	r.InWindow++
	r.Strikes++
	switch {
	case p.Run && p.Permanent > 0 && r.Strikes >= p.Permanent:
		r.Permanent, r.Until = true, time.Time{}
	case r.InWindow >= p.Threshold:
		r.Until = now.Add(LockDuration(p, r.Locks+1))
	default:
		return recovery.Strike{Lock: r.Lock}
	}
	// The lock closes the window: counting starts afresh after it.
	r.Locks++
	r.Since = now
	r.Reason = ""
	r.InWindow, r.WindowEnd = 0, now
	return recovery.Strike{Set: true, Lock: r.Lock}
}

// Impose locks r at now for d, or until support lifts it when d is 0:
// how every Store imposes a lock, Memory under its mutex and Redis in
// a script. It never shortens a lock in force (a later end stays, a
// permanent lock stays permanent) and keeps the strikes and the window:
// only a lift gives fresh tries. It reports whether no lock was in force
// before, which makes this a new lock, whose owner is told.
func Impose(r *recovery.Record, now time.Time, d time.Duration) (set bool) {
	set = !r.InForce(now)
	if set {
		r.Since = now
	}
	switch {
	case d <= 0:
		r.Permanent, r.Until = true, time.Time{}
	case !r.Permanent && r.Until.Before(now.Add(d)):
		r.Until = now.Add(d)
	}
	r.Reason = recovery.ReasonSupport
	return set
}

// Forgive takes one strike back from r, unless r is locked. It reports
// whether r is now empty and can go.
func Forgive(p recovery.Policy, r *recovery.Record, now time.Time) (empty bool) {
	if r.InForce(now) {
		return false
	}
	if now.Before(r.WindowEnd) && r.InWindow > 0 {
		r.InWindow--
	}
	if r.Strikes > 0 {
		r.Strikes--
	}
	return r.Strikes == 0 && r.Locks == 0
}

// Expiry is when r may be forgotten: never (the zero time) while a run is
// kept or a lock is permanent, otherwise once both its window and its lock
// have ended.
func Expiry(p recovery.Policy, r recovery.Record) time.Time {
	if p.Run || r.Permanent {
		return time.Time{}
	}
	if r.Until.After(r.WindowEnd) {
		return r.Until
	}
	return r.WindowEnd
}

// SortLocks orders locks as ListLocks returns them: by Until, permanent
// locks last, and then by Key.
func SortLocks(locks []recovery.Lock) {
	slices.SortFunc(locks, func(a, b recovery.Lock) int {
		return cmp.Or(cmp.Compare(b2i(a.Permanent), b2i(b.Permanent)), a.Until.Compare(b.Until), cmp.Compare(a.Key, b.Key))
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
