package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func (r *Store) usedKey(key string) string { return r.base + "used:" + key }

// UseOnce marks key used until until with SET NX PXAT, which Redis runs
// atomically: of concurrent calls, on any instance, one sets it. The mark
// expires by the server's clock.
//
// While this store knows of a loss of state that no one acknowledged, it
// refuses (recovery.ErrStateLost): a server gone back in time may have
// forgotten a mark.
func (r *Store) UseOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if lost, err := r.stillLost(ctx); err != nil {
		return false, err
	} else if lost {
		return false, fmt.Errorf("redis use once: %w: %w", recovery.ErrUnavailable, recovery.ErrStateLost)
	}
	if !r.clock.Now().Before(until) {
		return true, nil // nothing to remember: it could not be used again anyway
	}
	err := r.client.SetArgs(ctx, r.usedKey(key), until.UnixMilli(), redis.SetArgs{Mode: "NX", ExpireAt: until}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, redisError("use once", err)
	}
	return true, nil
}

// Used reports whether key is marked used.
func (r *Store) Used(ctx context.Context, key string) (bool, error) {
	if lost, err := r.stillLost(ctx); err != nil {
		return false, err
	} else if lost {
		return false, fmt.Errorf("redis used: %w: %w", recovery.ErrUnavailable, recovery.ErrStateLost)
	}
	n, err := r.client.Exists(ctx, r.usedKey(key)).Result()
	if err != nil {
		return false, redisError("used", err)
	}
	return n == 1, nil
}
