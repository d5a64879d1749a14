package httpsig

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// NonceStore remembers the nonces of accepted signatures, so that a
// Verifier accepts each signed request once. Verifiers that share a store
// refuse each other's replays: share one between every instance of an
// upstream and across its restarts, and a replay is refused wherever it is
// sent. NonceCache keeps nonces in this process only; the subpackage
// redisnonce keeps them on a Redis server.
type NonceStore interface {
	// Claim records that the signature under keyID with nonce was accepted
	// at now, and that the pair must not be accepted again before until.
	// It reports false, and no error, if the pair was already claimed and
	// its until has not passed. Of concurrent claims of one pair, at most
	// one reports true. An error means the store could not decide; the
	// Verifier then refuses the request, wrapping ErrNonceStore.
	Claim(ctx context.Context, keyID, nonce string, until, now time.Time) (bool, error)
}

// DefaultNonceCacheSize is the number of nonces a NonceCache made by
// NewVerifier remembers. A nonce is kept for at most MaxValidity plus twice
// the clock skew, so the default covers over 800 verified requests a second
// with the default skew: far more than password resets ever reach.
const DefaultNonceCacheSize = 100_000

// NonceCache is a NonceStore in this process's memory. It remembers the
// nonces of accepted signatures until their window closes, and forgets them
// when the process ends: another process, or this one after a restart,
// accepts a replay once more within the signature's window. Several
// Verifiers may share one: entries are keyed by key ID and nonce. It is
// bounded, starts no goroutine, and is safe for concurrent use.
type NonceCache struct {
	// mu makes check-and-insert one step, which two calls on the
	// thread-safe lru.Cache would not be.
	mu   sync.Mutex
	lru  *simplelru.LRU[string, time.Time]
	size int
}

// NewNonceCache returns a cache for up to size nonces.
func NewNonceCache(size int) (*NonceCache, error) {
	if size <= 0 {
		return nil, fmt.Errorf("nonce cache size %d is not positive", size)
	}
	lru, err := simplelru.NewLRU[string, time.Time](size, nil)
	if err != nil {
		return nil, fmt.Errorf("creating nonce cache: %w", err)
	}
	return &NonceCache{lru: lru, size: size}, nil
}

// Claim implements NonceStore. It fails with ErrNonceCacheFull if the cache
// is full and its oldest entry is still in force at now: evicting it would
// let its request be replayed.
func (c *NonceCache) Claim(_ context.Context, keyID, nonce string, until, now time.Time) (bool, error) {
	key := keyID + "\x00" + nonce
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.lru.Peek(key); ok {
		if !now.After(prev) {
			return false, nil
		}
		c.lru.Add(key, until)
		return true, nil
	}
	// Entries go in roughly in expiry order, so the expired ones are at
	// the old end.
	for c.lru.Len() >= c.size {
		_, oldest, ok := c.lru.GetOldest()
		if !ok || !now.After(oldest) {
			return false, ErrNonceCacheFull
		}
		c.lru.RemoveOldest()
	}
	c.lru.Add(key, until)
	return true, nil
}

// Interface guards
var _ NonceStore = (*NonceCache)(nil)
