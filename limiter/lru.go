package limiter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// DefaultMaxKeys is the bound on counters an LRUStore keeps when the
// operator sets none. A counter costs about 200 bytes with its share of the
// index, so a full store holds some 50 MiB and a flood that churns it peaks
// near 100 MiB of heap (see BenchmarkStartFlood), while 250,000 counters
// still cover tens of thousands of recoveries an hour.
const DefaultMaxKeys = 250_000

// LRUStore is a ulule limiter.Store that keeps fixed-window counters in
// memory, holding at most maxKeys of them and dropping the least recently
// used first. It starts no goroutines: expired windows are replaced when
// their key is next used, or evicted like any other key.
//
// Its answers match ulule's memory store: Get adds one event, Increment adds
// count, Peek reads without counting, Reset forgets the key, and each returns
// the limit, what remains of it, whether it was exceeded and the window's end
// in Unix seconds. A window opens at the first event of a key and covers
// [first, first+period): at first+period the key starts afresh.
//
// Evicting a counter resets it, and that is all an attacker gains by
// churning the bound. Every use moves a key to the front, so a counter goes
// only after maxKeys other keys were created or used since its own last use.
// Through a Guard with the default limits, a client (an IPv4 address or an
// IPv6 /64) creates at most about 33 keys an hour (its own, and the account
// and phone counters of the 10 starts start_ip allows it; refused requests
// create none) and at most three per request, so flushing DefaultMaxKeys
// takes some 7,600 addresses (an IPv6 /51 holds 8,192 /64s) and over 80,000
// requests. Each flush buys a targeted account start_account more starts,
// within start_phone and sms_global, and no guess: wrong codes and the locks
// they set live in the LockStore, which never evicts. Since Peek counts as a
// use, the global SMS budget, read on every start, is never the counter
// evicted.
type LRUStore struct {
	clock recovery.Clock

	mu    sync.Mutex
	cache *simplelru.LRU[string, Window]
}

// Window is one key's counter: N events in the window ending at End.
type Window struct {
	N   int64
	End int64 // Unix nanoseconds; the window has ended once now >= End
}

// NewLRUStore returns a store that holds at most maxKeys counters and reads
// the time from clock.
func NewLRUStore(maxKeys int, clock recovery.Clock) (*LRUStore, error) {
	if maxKeys < 1 {
		return nil, errors.New("lru store: max keys must be at least 1")
	}
	if clock == nil {
		return nil, errors.New("lru store: nil clock")
	}
	// simplelru, the core of lru.Cache, without its own lock: a count is a
	// read-modify-write, so one mutex must cover the lookup and the update.
	cache, err := simplelru.NewLRU[string, Window](maxKeys, nil)
	if err != nil {
		return nil, err
	}
	return &LRUStore{clock: clock, cache: cache}, nil
}

// Get counts one event for key and returns the state of its window.
func (s *LRUStore) Get(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return s.Increment(ctx, key, 1, rate)
}

// Increment counts count events for key and returns the state of its window.
func (s *LRUStore) Increment(_ context.Context, key string, count int64, rate ulimiter.Rate) (ulimiter.Context, error) {
	now := s.clock.Now()
	s.mu.Lock()
	w := s.current(key, now, rate)
	w.N += count
	s.cache.Add(key, w)
	s.mu.Unlock()
	return state(now, rate, w), nil
}

// Peek returns the state of key's window without counting an event.
func (s *LRUStore) Peek(_ context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	now := s.clock.Now()
	s.mu.Lock()
	w := s.current(key, now, rate)
	s.mu.Unlock()
	return state(now, rate, w), nil
}

// Reset forgets key's counter and returns the state of a fresh window.
func (s *LRUStore) Reset(_ context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	now := s.clock.Now()
	s.mu.Lock()
	s.cache.Remove(key)
	s.mu.Unlock()
	return state(now, rate, fresh(now, rate)), nil
}

// Len returns how many counters the store holds, expired ones included.
func (s *LRUStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.Len()
}

// current returns key's window if it is still open, or a fresh one, marking
// the key as recently used. s.mu must be held.
func (s *LRUStore) current(key string, now time.Time, rate ulimiter.Rate) Window {
	if w, ok := s.cache.Get(key); ok && now.UnixNano() < w.End {
		return w
	}
	return fresh(now, rate)
}

func fresh(now time.Time, rate ulimiter.Rate) Window {
	return Window{End: now.Add(rate.Period).UnixNano()}
}

func state(now time.Time, rate ulimiter.Rate, w Window) ulimiter.Context {
	return common.GetContextFromState(now, rate, time.Unix(0, w.End), w.N)
}

// Interface guards
var _ ulimiter.Store = (*LRUStore)(nil)
