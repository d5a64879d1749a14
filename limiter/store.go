package limiter

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Lock kinds.
const (
	KindAccount = "account" // the recovery route of one account is locked
	KindIP      = "ip"      // one client IP (or IPv6 /64) is blocked
)

// Lock is a lock on an account's recovery or a block of a client IP, and the
// wrong codes behind it.
type Lock struct {
	Kind  string    `json:"kind"`
	Key   string    `json:"key"`
	Until time.Time `json:"until,omitzero"` // the lock's end; for a permanent lock, the zero time
	Since time.Time `json:"since"`
	// Permanent is a lock that ends only when support lifts it.
	Permanent bool `json:"permanent,omitempty"`
	// Strikes counts the wrong codes behind the lock: in a row, for an
	// account; in the current window, for a client.
	Strikes int64 `json:"strikes"`
	// Locks counts the locks set in a row, this one included. A lock
	// support imposed is not counted: it lengthens no lock after it.
	Locks int64 `json:"locks"`
	// Reason says what set the lock: ReasonSupport for one imposed through
	// LockStore.Impose, which stores keep; ReasonWrongCodes, which
	// Guard.Locks fills in, for the rest.
	Reason string `json:"reason,omitempty"`
}

// Reasons of a lock.
const (
	ReasonWrongCodes = "wrong_codes" // a lockout or an IP block, set by wrong codes
	ReasonSupport    = "support"     // imposed by support, through the admin API
)

// InForce reports whether l holds at now.
func (l Lock) InForce(now time.Time) bool {
	return l.Permanent || now.Before(l.Until)
}

// Policy says how strikes against one kind of key become locks.
//
// A strike is one code about to be compared. Strikes falling in one fixed
// Window that reach Threshold set a lock; the next strike after it opens a
// new window. The first lock lasts Duration and each further lock of the
// same run twice as long as the one before, up to MaxDuration. With Run
// set, the strikes in a row are kept, across windows and locks, until the
// run is ended (a correct code, or support lifting the lock), and when they
// reach Permanent the lock holds until then. Without Run, a key's record
// ends with its window and its lock.
type Policy struct {
	Threshold   int64
	Window      time.Duration
	Duration    time.Duration
	MaxDuration time.Duration
	Run         bool
	Permanent   int64 // 0: never permanent
}

// LockDuration is the length of the n-th lock of a run (n from 1).
func (p Policy) LockDuration(n int64) time.Duration {
	d := p.Duration
	for i := int64(1); i < n && d < p.MaxDuration; i++ {
		d *= 2
	}
	return min(d, max(p.MaxDuration, p.Duration))
}

// Strike is the outcome of one strike of a plan.
type Strike struct {
	// Refused is true when a lock was in force already: nothing was counted.
	Refused bool
	// Set is true when this strike set the lock.
	Set bool
	// Lock is the key's record after the strike; when Refused or Set, the
	// lock in force.
	Lock Lock
}

// LockStore is what support does with the security state behind locks:
// list, lift and impose them. Strikes are counted by plans (PlanStore).
// Storage backends implement it.
type LockStore interface {
	// EndRun deletes the key's record: its strikes and any lock. It reports
	// whether a lock was in force.
	EndRun(ctx context.Context, kind, key string) (bool, error)
	// ListLocks returns the locks of a kind in force now, ordered by Until
	// (permanent locks last) and then Key.
	ListLocks(ctx context.Context, kind string) ([]Lock, error)
	// Impose locks kind and key for d, or until EndRun when d is 0, as
	// Impose does, in one atomic step: of concurrent calls on a key with
	// no lock in force, exactly one reports the lock set. It returns the
	// lock now in force. A key the store does not hold needs room: when
	// there is none, recovery.ErrFull.
	Impose(ctx context.Context, kind, key string, d time.Duration) (lock Lock, set bool, err error)
}

// Record is what a LockStore keeps for one key: its lock, if any, and the
// strikes counted towards the next.
type Record struct {
	Lock
	InWindow  int64     // strikes in the current window
	WindowEnd time.Time // the end of the current window
}

// Strike counts one strike against r at now under p, which is how every
// LockStore counts: Memory runs it under its mutex, and Redis runs the same
// steps in a script. A lock in force refuses the strike and changes nothing.
func (p Policy) Strike(r *Record, now time.Time) Strike {
	if r.InForce(now) {
		return Strike{Refused: true, Lock: r.Lock}
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
		r.Until = now.Add(p.LockDuration(r.Locks + 1))
	default:
		return Strike{Lock: r.Lock}
	}
	// The lock closes the window: counting starts afresh after it.
	r.Locks++
	r.Since = now
	r.Reason = ""
	r.InWindow, r.WindowEnd = 0, now
	return Strike{Set: true, Lock: r.Lock}
}

// Impose locks r at now for d, or until support lifts it when d is 0:
// how every LockStore imposes a lock, Memory under its mutex and Redis in
// a script. It never shortens a lock in force (a later end stays, a
// permanent lock stays permanent) and keeps the strikes and the window:
// only a lift gives fresh tries. It reports whether no lock was in force
// before, which makes this a new lock, whose owner is told.
func Impose(r *Record, now time.Time, d time.Duration) (set bool) {
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
	r.Reason = ReasonSupport
	return set
}

// Forgive takes one strike back from r, unless r is locked. It reports
// whether r is now empty and can go.
func (p Policy) Forgive(r *Record, now time.Time) (empty bool) {
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
func (p Policy) Expiry(r Record) time.Time {
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
func SortLocks(locks []Lock) {
	slices.SortFunc(locks, func(a, b Lock) int {
		return cmp.Or(cmp.Compare(b2i(a.Permanent), b2i(b.Permanent)), a.Until.Compare(b.Until), cmp.Compare(a.Key, b.Key))
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
