package limiter

import (
	"context"
	"time"
)

// Lock kinds.
const (
	KindAccount = "account" // the recovery route of one account is locked
	KindIP      = "ip"      // one client IP (or IPv6 /64) is blocked
)

// Lock is a temporary lock on an account's recovery or a block of a client IP.
type Lock struct {
	Kind  string    `json:"kind"`
	Key   string    `json:"key"`
	Until time.Time `json:"until"`
	Since time.Time `json:"since"`
}

// LockStore keeps locks until they expire. Storage backends implement it.
type LockStore interface {
	// SetLock stores l until l.Until, replacing any lock of the same kind and key.
	SetLock(ctx context.Context, l Lock) error
	// GetLock returns the lock of that kind and key, if one is in force.
	GetLock(ctx context.Context, kind, key string) (Lock, bool, error)
	// DeleteLock lifts a lock and reports whether there was one.
	DeleteLock(ctx context.Context, kind, key string) (bool, error)
	// ListLocks returns the locks of a kind in force now.
	ListLocks(ctx context.Context, kind string) ([]Lock, error)
}
