package redisstore

import (
	"context"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/tests"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// TestRedisULuleStore runs ulule's own suite of a limiter.Store against
// Redis, on the wall clock that suite reads; each run has a prefix of its
// own, so that the suite's key "foo" is its own.
func TestRedisULuleStore(t *testing.T) {
	t.Parallel()
	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()
		tests.TestStoreSequentialAccess(t, newTestRedis(t, clock.Real{}))
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		tests.TestStoreConcurrentAccess(t, newTestRedis(t, clock.Real{}))
	})
}

// TestRedisULuleStoreKeys checks that the ulimiter.Store methods count in
// the key a plan's count of the same scope and key uses, with its window
// as its time to live, one round trip each.
func TestRedisULuleStoreKeys(t *testing.T) {
	t.Parallel()
	r := newTestRedis(t, clock.Real{})
	ctx := context.Background()
	rate := ulimiter.Rate{Limit: 3, Period: time.Hour}
	key := limiter.ScopeStartPhone + ":phone"
	if err := counterScript.Load(ctx, r.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	trips := &storagetest.RedisTrips{}
	r.Client().AddHook(trips)
	if _, err := r.Reset(ctx, key, rate); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Peek(ctx, key, rate); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Increment(ctx, key, 2, rate); err != nil {
		t.Fatal(err)
	}
	if n := trips.All.Load(); n != 3 {
		t.Errorf("%d round trips for Reset, Peek and Increment, want 3", n)
	}
	n, err := r.Client().Get(ctx, r.base+"count:"+key).Int64()
	if err != nil || n != 2 {
		t.Fatalf("the counter's key holds %d, %v; want 2", n, err)
	}
	if d, err := r.Client().PTTL(ctx, r.base+"count:"+key).Result(); err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("the counter's time to live: %v, %v; want about an hour", d, err)
	}
}
