package limiter

import (
	"context"
	"errors"
	"sync"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// t0 is a whole second, so that window ends in Unix seconds are exact.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// memLocks is an in-memory LockStore whose records never go, counting
// under Policy.Strike like the real stores.
type memLocks struct {
	clock recovery.Clock

	mu      sync.Mutex
	records map[[2]string]*Record
}

func newMemLocks(clock recovery.Clock) *memLocks {
	return &memLocks{clock: clock, records: make(map[[2]string]*Record)}
}

func (m *memLocks) Strike(_ context.Context, kind, key string, p Policy) (Strike, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[[2]string{kind, key}]
	if r == nil {
		r = &Record{Lock: Lock{Kind: kind, Key: key}}
		m.records[[2]string{kind, key}] = r
	}
	return p.Strike(r, m.clock.Now()), nil
}

func (m *memLocks) Forgive(_ context.Context, kind, key string, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.records[[2]string{kind, key}]; r != nil && p.Forgive(r, m.clock.Now()) {
		delete(m.records, [2]string{kind, key})
	}
	return nil
}

func (m *memLocks) EndRun(_ context.Context, kind, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[[2]string{kind, key}]
	delete(m.records, [2]string{kind, key})
	return r != nil && r.InForce(m.clock.Now()), nil
}

func (m *memLocks) GetLock(_ context.Context, kind, key string) (Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[[2]string{kind, key}]
	if r == nil || !r.InForce(m.clock.Now()) {
		return Lock{}, false, nil
	}
	return r.Lock, true, nil
}

func (m *memLocks) Impose(_ context.Context, kind, key string, d time.Duration) (Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[[2]string{kind, key}]
	if r == nil {
		r = &Record{Lock: Lock{Kind: kind, Key: key}}
		m.records[[2]string{kind, key}] = r
	}
	set := Impose(r, m.clock.Now(), d)
	return r.Lock, set, nil
}

func (m *memLocks) ListLocks(_ context.Context, kind string) ([]Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Lock
	for _, r := range m.records {
		if r.Kind == kind && r.InForce(m.clock.Now()) {
			out = append(out, r.Lock)
		}
	}
	SortLocks(out)
	return out, nil
}

var errDown = errors.New("backend down")

// brokenStore is a counter store whose every call fails.
type brokenStore struct{}

func (brokenStore) Get(context.Context, string, ulimiter.Rate) (ulimiter.Context, error) {
	return ulimiter.Context{}, errDown
}

func (brokenStore) Peek(context.Context, string, ulimiter.Rate) (ulimiter.Context, error) {
	return ulimiter.Context{}, errDown
}

func (brokenStore) Reset(context.Context, string, ulimiter.Rate) (ulimiter.Context, error) {
	return ulimiter.Context{}, errDown
}

func (brokenStore) Increment(context.Context, string, int64, ulimiter.Rate) (ulimiter.Context, error) {
	return ulimiter.Context{}, errDown
}

// brokenLocks is a LockStore whose every call fails.
type brokenLocks struct{}

func (brokenLocks) Strike(context.Context, string, string, Policy) (Strike, error) {
	return Strike{}, errDown
}

func (brokenLocks) Forgive(context.Context, string, string, Policy) error { return errDown }

func (brokenLocks) EndRun(context.Context, string, string) (bool, error) { return false, errDown }

func (brokenLocks) GetLock(context.Context, string, string) (Lock, bool, error) {
	return Lock{}, false, errDown
}

func (brokenLocks) ListLocks(context.Context, string) ([]Lock, error) { return nil, errDown }

func (brokenLocks) Impose(context.Context, string, string, time.Duration) (Lock, bool, error) {
	return Lock{}, false, errDown
}
