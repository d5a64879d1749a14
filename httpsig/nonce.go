package httpsig

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultNonceCacheSize is the number of nonces a NonceCache made by
// NewVerifier remembers. A nonce is kept for at most MaxValidity plus twice
// the clock skew, so the default covers over 800 verified requests a second
// with the default skew: far more than password resets ever reach.
const DefaultNonceCacheSize = 100_000

// NonceCache remembers the nonces of accepted signatures until their window
// closes, so that each is accepted once. Several Verifiers may share one:
// entries are keyed by key ID and nonce. It is bounded, starts no goroutine,
// and is safe for concurrent use.
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

// use records the nonce of keyID as used until until. It fails with
// ErrReplay if the nonce is already recorded and still in force at now, and
// with ErrNonceCacheFull if the cache is full and its oldest entry is still
// in force: evicting it would let its request be replayed.
func (c *NonceCache) use(keyID, nonce string, until, now time.Time) error {
	key := keyID + "\x00" + nonce
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.lru.Peek(key); ok {
		if !now.After(prev) {
			return ErrReplay
		}
		c.lru.Add(key, until)
		return nil
	}
	// Entries go in roughly in expiry order, so the expired ones are at
	// the old end.
	for c.lru.Len() >= c.size {
		_, oldest, ok := c.lru.GetOldest()
		if !ok || !now.After(oldest) {
			return ErrNonceCacheFull
		}
		c.lru.RemoveOldest()
	}
	c.lru.Add(key, until)
	return nil
}
