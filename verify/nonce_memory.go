package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
)

func init() {
	caddy.RegisterModule(MemoryNonceStore{})
}

// NonceStoreNamespace is the Caddy module namespace of the verifier's nonce
// stores. The handler loads one from its "nonce_store" field, whose "store"
// names the module: {"store": "redis", "url": "redis://127.0.0.1:6379/0"}
// loads http.handlers.sms_recovery_verify.nonce_stores.redis. A module of
// this namespace must implement httpsig.NonceStore, and free what it holds
// in Cleanup.
const NonceStoreNamespace = "http.handlers.sms_recovery_verify.nonce_stores"

// noncePool holds the one nonce cache that every sms_recovery_verify
// handler of the process shares, so that a config reload, which provisions
// new handlers before it cleans up the old ones, does not forget the nonces
// already accepted.
var noncePool = caddy.NewUsagePool()

const noncePoolKey = "nonces"

// pooledNonceCache lets the cache live in a caddy.UsagePool.
type pooledNonceCache struct{ *httpsig.NonceCache }

// Destruct has nothing to free: the cache holds no goroutine or connection.
func (pooledNonceCache) Destruct() error { return nil }

// MemoryNonceStore is the nonce store
// http.handlers.sms_recovery_verify.nonce_stores.memory, the default:
// accepted nonces are kept in this process, in one cache of
// httpsig.DefaultNonceCacheSize that every sms_recovery_verify handler of
// the process shares and that a config reload keeps. No other process sees
// them and a restart forgets them: a captured signed request replayed to a
// second instance, or to this one after a restart, is accepted once more
// while its window is open (up to 60 s after it was signed, plus max_skew).
// It suits one instance that rarely restarts. JSON: {"store": "memory"}.
type MemoryNonceStore struct {
	cache  *httpsig.NonceCache
	pooled bool // holds a reference to noncePool
}

// CaddyModule returns the Caddy module information.
func (MemoryNonceStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  NonceStoreNamespace + ".memory",
		New: func() caddy.Module { return new(MemoryNonceStore) },
	}
}

// Provision takes the process's shared cache, making it if no handler
// holds it.
func (m *MemoryNonceStore) Provision(caddy.Context) error {
	val, _, err := noncePool.LoadOrNew(noncePoolKey, func() (caddy.Destructor, error) {
		c, err := httpsig.NewNonceCache(httpsig.DefaultNonceCacheSize)
		if err != nil {
			return nil, err
		}
		return pooledNonceCache{c}, nil
	})
	if err != nil {
		return fmt.Errorf("nonce_store memory: %w", err)
	}
	m.cache, m.pooled = val.(pooledNonceCache).NonceCache, true
	return nil
}

// Claim implements httpsig.NonceStore.
func (m *MemoryNonceStore) Claim(ctx context.Context, keyID, nonce string, until, now time.Time) (bool, error) {
	return m.cache.Claim(ctx, keyID, nonce, until, now)
}

// Cleanup releases the shared cache; the last handler to let go of it
// frees it.
func (m *MemoryNonceStore) Cleanup() error {
	if !m.pooled {
		return nil
	}
	m.pooled = false
	_, err := noncePool.Delete(noncePoolKey)
	return err
}

// UnmarshalCaddyfile reads
//
//	nonce_store memory
func (m *MemoryNonceStore) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("nonce_store memory: takes no argument (got '%s')", d.Val())
	}
	for d.NextBlock(0) {
		return cfparse.Unknown(d, "nonce_store memory")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*MemoryNonceStore)(nil)
	_ caddy.CleanerUpper = (*MemoryNonceStore)(nil)
	_ cf.Unmarshaler     = (*MemoryNonceStore)(nil)
	_ httpsig.NonceStore = (*MemoryNonceStore)(nil)
)
