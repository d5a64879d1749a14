package module

import (
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// stores holds the state of every handler in this process, keyed by its
// storage settings: handlers that name the same storage share it, and a
// config reload finds the state of the config before it.
var stores = caddy.NewUsagePool()

// pooledStore is one entry of the pool.
type pooledStore struct {
	key     string
	backend recovery.Store
	health  *healthCheck // of the readiness route
	close   func() error
}

// Destruct closes the backend when the last handler using it is gone.
func (p *pooledStore) Destruct() error {
	if p.close != nil {
		return p.close()
	}
	return nil
}

// loadStore loads the storage module and returns the pooled state for its
// settings, opening it on first use. The caller must release it with
// releaseStore.
func (h *Handler) loadStore(ctx caddy.Context) (*pooledStore, error) {
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	opener, ok := mod.(storage.Opener)
	if !ok {
		return nil, fmt.Errorf("storage: module %s is not a store (it has no Open method)", caddy.GetModuleID(mod))
	}
	if s, ok := mod.(storage.Shared); ok && s.SharedAcrossProcesses() && len(h.Secrets) == 0 {
		return nil, fmt.Errorf("secret: required with %s storage, so that every instance hashes codes and tokens alike",
			caddy.GetModuleName(mod))
	}
	key, err := poolKey(mod)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		o, err := opener.Open()
		if err != nil {
			return nil, err
		}
		return &pooledStore{key: key, backend: o.Backend, close: o.Close,
			health: newHealthCheck(o.Backend, clock.Real{})}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*pooledStore), nil
}

func releaseStore(p *pooledStore) error {
	_, err := stores.Delete(p.key)
	return err
}
