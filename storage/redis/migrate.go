package redisstore

import (
	"context"
	"errors"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// MigrateLocks moves the security state of the key layout before the
// deployment's hash tag (P lock:{kind}:key and the index P locks:{kind})
// to the current one, so that an upgrade forgets no lock, block or run of
// wrong codes. Each record keeps its time to live; a record the current
// layout holds already is kept and the old one dropped. It returns how many
// records it moved, and is safe to run again and from several instances at
// once. Flows, tokens and rate counters of the old layout are not moved:
// they end within their windows, and a person whose flow was cut by the
// upgrade starts again.
func (r *Store) MigrateLocks(ctx context.Context) (int, error) {
	var (
		mu    sync.Mutex
		moved int
		errs  []error
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		for _, kind := range []string{recovery.KindAccount, recovery.KindIP} {
			old := r.Prefix + "lock:{" + kind + "}:"
			iter := c.Scan(ctx, 0, globEscape(old)+"*", 100).Iterator()
			for iter.Next(ctx) {
				ok, err := r.migrateLock(ctx, kind, iter.Val(), strings.TrimPrefix(iter.Val(), old))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					moved++
				}
				mu.Unlock()
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, r.client)
	}
	if err == nil && len(errs) == 0 {
		for _, kind := range []string{recovery.KindAccount, recovery.KindIP} {
			if derr := r.client.Del(ctx, r.Prefix+"locks:{"+kind+"}").Err(); derr != nil {
				errs = append(errs, derr)
			}
		}
	}
	return moved, redisError("migrate locks", errors.Join(append(errs, err)...))
}

// migrateLock copies one old record to its new key, unless that exists,
// with the same time to live, indexes it if it is locked, and deletes the
// old key. The two keys are in different Cluster slots, so it takes several
// commands (DUMP, RESTORE) rather than one script; run again, it finishes
// what an interrupted run left.
func (r *Store) migrateLock(ctx context.Context, kind, oldKey, key string) (bool, error) {
	dump, err := r.client.Dump(ctx, oldKey).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // gone meanwhile
	}
	if err != nil {
		return false, err
	}
	ttl, err := r.client.PTTL(ctx, oldKey).Result()
	if err != nil {
		return false, err
	}
	if ttl == -2 { // expired meanwhile
		return false, nil
	}
	if ttl < 0 {
		ttl = 0 // RESTORE: no time to live
	}
	newKey := r.lockKey(kind, key)
	moved := true
	if err := r.client.Restore(ctx, newKey, ttl, dump).Err(); err != nil {
		if !redis.HasErrorPrefix(err, "BUSYKEY") {
			return false, err
		}
		moved = false // the new layout's record is newer
	}
	if moved {
		vals, err := r.client.HMGet(ctx, newKey, "until", "perm").Result()
		if err != nil {
			return false, err
		}
		until, _ := vals[0].(string)
		if perm, _ := vals[1].(string); perm == "1" {
			until = "+inf"
		}
		if n, _ := strconv.ParseInt(until, 10, 64); until == "+inf" || n > r.clock.Now().UnixMilli() {
			if err := r.client.Do(ctx, "ZADD", r.lockIndex(kind), until, newKey).Err(); err != nil {
				return false, err
			}
		}
	}
	return moved, r.client.Del(ctx, oldKey).Err()
}

// globEscape escapes the glob characters of SCAN MATCH in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
