package storage

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Memory is a recovery.Store and limiter.LockStore held in this process.
//
// It keeps at most maxEntries flows, maxEntries tokens and maxEntries locks,
// each kind in its own least-recently-used list, so that a flood of started
// flows can push out only other flows: never a token someone is about to
// spend, nor a lock or block that holds an attacker back. When a list is
// full, adding to it drops its least recently used record.
//
// Records expire against the injected clock when they are read; an expired
// record behaves as missing and is dropped then. Memory starts no
// goroutines. One mutex guards all three lists, which makes every method
// atomic and is why the lists are simplelru's unsynchronised ones.
type Memory struct {
	clock recovery.Clock

	mu     sync.Mutex
	flows  *simplelru.LRU[string, recovery.Flow]
	tokens *simplelru.LRU[string, memToken] // keyed by the token's hash
	locks  *simplelru.LRU[lockID, limiter.Lock]
}

// memToken is a stored token and the end of the hold BeginSpend put on it.
type memToken struct {
	token     recovery.Token
	heldUntil time.Time
}

type lockID struct{ kind, key string }

// NewMemory returns an empty Memory holding at most maxEntries records of
// each kind (flows, tokens, locks) and reading the time from clock.
func NewMemory(maxEntries int, clock recovery.Clock) (*Memory, error) {
	if maxEntries <= 0 {
		return nil, errors.New("creating memory storage: max entries must be positive")
	}
	if clock == nil {
		return nil, errors.New("creating memory storage: no clock")
	}
	// NewLRU fails only for a size below one, refused above.
	flows, _ := simplelru.NewLRU[string, recovery.Flow](maxEntries, nil)
	tokens, _ := simplelru.NewLRU[string, memToken](maxEntries, nil)
	locks, _ := simplelru.NewLRU[lockID, limiter.Lock](maxEntries, nil)
	return &Memory{clock: clock, flows: flows, tokens: tokens, locks: locks}, nil
}

// CreateFlow stores f until f.ExpiresAt, replacing any flow with its ID.
func (m *Memory) CreateFlow(_ context.Context, f recovery.Flow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flows.Add(f.ID, cloneFlow(f))
	return nil
}

// Flow returns the flow with that ID, or recovery.ErrNotFound.
func (m *Memory) Flow(_ context.Context, id string) (recovery.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.flow(id, m.clock.Now())
	if !ok {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	return cloneFlow(f), nil
}

// Attempt counts one attempt on the flow and returns it; a flow whose count
// would exceed maxAttempts is deleted and recovery.ErrNotFound returned.
func (m *Memory) Attempt(_ context.Context, id string, maxAttempts int) (recovery.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.flow(id, m.clock.Now())
	if !ok {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	f.Attempts++
	if f.Attempts > maxAttempts {
		m.flows.Remove(id)
		return recovery.Flow{}, recovery.ErrNotFound
	}
	m.flows.Add(id, f)
	return cloneFlow(f), nil
}

// ConsumeFlow deletes the flow and reports whether it was there.
func (m *Memory) ConsumeFlow(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.flow(id, m.clock.Now()); !ok {
		return false, nil
	}
	m.flows.Remove(id)
	return true, nil
}

// Resend replaces the flow's code when interval has passed since its SentAt;
// otherwise it returns the unchanged flow and recovery.ErrTooEarly. The flow
// expires as seen at now, the time the caller passes.
func (m *Memory) Resend(_ context.Context, id string, codeHash []byte, now time.Time, interval time.Duration, expiresAt time.Time) (recovery.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.flow(id, now)
	if !ok {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	if now.Sub(f.SentAt) < interval {
		return cloneFlow(f), recovery.ErrTooEarly
	}
	f.CodeHash = bytes.Clone(codeHash)
	f.SentAt = now
	f.ExpiresAt = expiresAt
	f.Sends++
	m.flows.Add(id, f)
	return cloneFlow(f), nil
}

// flow returns the live flow with that ID, dropping it if it has expired.
// The caller holds m.mu.
func (m *Memory) flow(id string, now time.Time) (recovery.Flow, bool) {
	f, ok := m.flows.Get(id)
	if !ok {
		return recovery.Flow{}, false
	}
	if !now.Before(f.ExpiresAt) {
		m.flows.Remove(id)
		return recovery.Flow{}, false
	}
	return f, true
}

// PutToken stores t until t.ExpiresAt, replacing any token with its hash.
func (m *Memory) PutToken(_ context.Context, t recovery.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens.Add(string(t.Hash), memToken{token: cloneToken(t)})
	return nil
}

// BeginSpend holds the token until now+lease and returns it:
// recovery.ErrNotFound if it is unknown, expired or spent,
// recovery.ErrBusy while an earlier hold lasts.
func (m *Memory) BeginSpend(_ context.Context, hash []byte, lease time.Duration) (recovery.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	key := string(hash)
	rec, ok := m.tokens.Get(key)
	if !ok {
		return recovery.Token{}, recovery.ErrNotFound
	}
	if !now.Before(rec.token.ExpiresAt) {
		m.tokens.Remove(key)
		return recovery.Token{}, recovery.ErrNotFound
	}
	if now.Before(rec.heldUntil) {
		return recovery.Token{}, recovery.ErrBusy
	}
	rec.heldUntil = now.Add(lease)
	m.tokens.Add(key, rec)
	return cloneToken(rec.token), nil
}

// EndSpend deletes the token when spent, and otherwise lifts the hold so
// that it can be taken again. A token that is gone already is no error.
func (m *Memory) EndSpend(_ context.Context, hash []byte, spent bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := string(hash)
	if spent {
		m.tokens.Remove(key)
		return nil
	}
	if rec, ok := m.tokens.Peek(key); ok {
		rec.heldUntil = time.Time{}
		m.tokens.Add(key, rec)
	}
	return nil
}

// SetLock stores l until l.Until, replacing any lock of its kind and key.
func (m *Memory) SetLock(_ context.Context, l limiter.Lock) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locks.Add(lockID{l.Kind, l.Key}, l)
	return nil
}

// GetLock returns the lock of that kind and key if one is in force.
func (m *Memory) GetLock(_ context.Context, kind, key string) (limiter.Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.lock(lockID{kind, key}, m.clock.Now())
	return l, ok, nil
}

// DeleteLock lifts the lock of that kind and key and reports whether one was
// in force.
func (m *Memory) DeleteLock(_ context.Context, kind, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := lockID{kind, key}
	_, ok := m.lock(id, m.clock.Now())
	m.locks.Remove(id)
	return ok, nil
}

// ListLocks returns the locks of a kind in force now, ordered by Until and
// then Key. It walks every lock, which suits the admin API it serves.
func (m *Memory) ListLocks(_ context.Context, kind string) ([]limiter.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []limiter.Lock
	for _, id := range m.locks.Keys() {
		if id.kind != kind {
			continue
		}
		l, _ := m.locks.Peek(id)
		if !now.Before(l.Until) {
			m.locks.Remove(id)
			continue
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b limiter.Lock) int {
		return cmp.Or(a.Until.Compare(b.Until), cmp.Compare(a.Key, b.Key))
	})
	return out, nil
}

// lock returns the lock with that ID if it is in force, dropping it if it
// has expired. The caller holds m.mu.
func (m *Memory) lock(id lockID, now time.Time) (limiter.Lock, bool) {
	l, ok := m.locks.Get(id)
	if !ok {
		return limiter.Lock{}, false
	}
	if !now.Before(l.Until) {
		m.locks.Remove(id)
		return limiter.Lock{}, false
	}
	return l, true
}

// cloneFlow copies the one slice of a flow, so that no caller can change a
// stored flow through the value it passed or got.
func cloneFlow(f recovery.Flow) recovery.Flow {
	f.CodeHash = bytes.Clone(f.CodeHash)
	return f
}

func cloneToken(t recovery.Token) recovery.Token {
	t.Hash = bytes.Clone(t.Hash)
	return t
}

// Interface guards
var (
	_ recovery.Store    = (*Memory)(nil)
	_ limiter.LockStore = (*Memory)(nil)
)
