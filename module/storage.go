package module

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// stores holds the state of every handler in this process, keyed by its
// storage settings: handlers that name the same storage share it, and a
// config reload finds the state of the config before it.
var stores = caddy.NewUsagePool()

// backend is what a storage backend gives the flow and the limiter.
type backend interface {
	recovery.Store
	limiter.LockStore
}

// pooledStore is one entry of the pool.
type pooledStore struct {
	key      string
	backend  backend
	counters ulimiter.Store
	close    func() error
}

// Destruct closes the backend when the last handler using it is gone.
func (p *pooledStore) Destruct() error {
	if p.close != nil {
		return p.close()
	}
	return nil
}

// counterBound is how many rate-limit counters the memory store keeps: the
// limiter's default at the default max_entries, and in proportion to it.
func counterBound(maxEntries int) int {
	return int(int64(limiter.DefaultMaxKeys) * int64(maxEntries) / defaultMaxEntries)
}

// loadStore returns the pooled store for s, making it on first use. The
// caller must release it with releaseStore.
func loadStore(s *Storage) (*pooledStore, error) {
	key, make := storeMaker(s)
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		p, err := make()
		if err != nil {
			return nil, err
		}
		p.key = key
		return p, nil
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

func storeMaker(s *Storage) (string, func() (*pooledStore, error)) {
	if m := s.Memory; m != nil {
		return fmt.Sprintf("memory/%d", m.MaxEntries), func() (*pooledStore, error) {
			mem, err := storage.NewMemory(m.MaxEntries, recovery.SystemClock{})
			if err != nil {
				return nil, fmt.Errorf("storage memory: %w", err)
			}
			counters, err := limiter.NewLRUStore(counterBound(m.MaxEntries), recovery.SystemClock{})
			if err != nil {
				return nil, fmt.Errorf("storage memory: %w", err)
			}
			return &pooledStore{backend: mem, counters: counters}, nil
		}
	}
	r := s.Redis
	return fmt.Sprintf("redis/%s/%s/%s/%s/%d", r.URL, r.Prefix, time.Duration(r.DialTimeout), time.Duration(r.Timeout), r.PoolSize), func() (*pooledStore, error) {
		rs, err := storage.NewRedis(storage.RedisConfig{
			URL:          r.URL,
			Prefix:       r.Prefix,
			DialTimeout:  time.Duration(r.DialTimeout),
			ReadTimeout:  time.Duration(r.Timeout),
			WriteTimeout: time.Duration(r.Timeout),
			PoolSize:     r.PoolSize,
		}, recovery.SystemClock{})
		if err != nil {
			return nil, fmt.Errorf("storage redis: %w", err)
		}
		counters := newRedisCounters(rs.Client(), r.Prefix+"limit")
		return &pooledStore{backend: rs, counters: counters, close: rs.Close}, nil
	}
}
