package limiter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// t0 is a whole second, so that window ends in Unix seconds are exact.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a recovery.Clock that tests set and advance.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// memLocks is an in-memory LockStore whose locks expire on its clock.
type memLocks struct {
	clock recovery.Clock

	mu    sync.Mutex
	locks map[[2]string]Lock
}

func newMemLocks(clock recovery.Clock) *memLocks {
	return &memLocks{clock: clock, locks: make(map[[2]string]Lock)}
}

func (m *memLocks) SetLock(_ context.Context, l Lock) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locks[[2]string{l.Kind, l.Key}] = l
	return nil
}

func (m *memLocks) GetLock(_ context.Context, kind, key string) (Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[[2]string{kind, key}]
	if !ok || !m.clock.Now().Before(l.Until) {
		return Lock{}, false, nil
	}
	return l, true, nil
}

func (m *memLocks) DeleteLock(ctx context.Context, kind, key string) (bool, error) {
	_, ok, _ := m.GetLock(ctx, kind, key)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.locks, [2]string{kind, key})
	return ok, nil
}

func (m *memLocks) ListLocks(_ context.Context, kind string) ([]Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Lock
	for _, l := range m.locks {
		if l.Kind == kind && m.clock.Now().Before(l.Until) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lock) int { return strings.Compare(a.Key, b.Key) })
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

func (brokenLocks) SetLock(context.Context, Lock) error { return errDown }

func (brokenLocks) GetLock(context.Context, string, string) (Lock, bool, error) {
	return Lock{}, false, errDown
}

func (brokenLocks) DeleteLock(context.Context, string, string) (bool, error) { return false, errDown }

func (brokenLocks) ListLocks(context.Context, string) ([]Lock, error) { return nil, errDown }
