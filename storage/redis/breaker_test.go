package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// TestRedisBreaker runs the breaker's contract on the test server, on a
// manual clock: the blocks end by the time the store reads, and the test
// moves it by days.
func TestRedisBreaker(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	storagetest.Breaker(t, func(tb testing.TB, clk recovery.Clock) storagetest.Store {
		return newTestRedis(tb, clk)
	})
}

// TestRedisBreakerOneRoundTrip: the breaker rides in the plan each request
// runs already, so a /start stays one round trip to Redis, whether its
// code counts, trips the block or meets it, and so does a right code's
// plan, which counts it entered.
func TestRedisBreakerOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	r := newTestRedis(t, clk)
	cfg := limiter.DefaultConfig()
	cfg.Breaker.MinSent = 3
	g, err := limiter.New(cfg, r, clk)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	start := func(prefix string) (recovery.Flow, error) {
		n++
		now := clk.Now()
		f := recovery.Flow{ID: fmt.Sprintf("f%d", n), Account: fmt.Sprintf("u%d@example.com", n), CodeHash: []byte("h"),
			Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute), ClientIP: "192.0.2.1", Prefix: prefix}
		sms, err := g.StartFlow(ctx, f.ClientIP, f, fmt.Sprintf("phone-%d", n))
		if err != nil {
			t.Fatalf("start %d: %v", n, err)
		}
		return f, sms
	}
	start("+316123") // loads the scripts and learns the epoch
	trips := &storagetest.RedisTrips{}
	r.Client().AddHook(trips)
	for i, want := range []error{nil, nil, recovery.ErrPrefixBlocked, recovery.ErrPrefixBlocked} {
		before := trips.All.Load()
		if _, sms := start("+447400"); !errors.Is(sms, want) && (want != nil || sms != nil) {
			t.Fatalf("start %d under the prefix: %v, want %v", i+1, sms, want)
		}
		if got := trips.All.Load() - before; got != 1 {
			t.Errorf("start %d under the prefix: %d round trips, want 1", i+1, got)
		}
	}
	f, _ := start("+316123")
	if _, _, err := g.Verify(ctx, f.ClientIP, f.ID, 5); err != nil {
		t.Fatal(err)
	}
	before := trips.All.Load()
	tok := recovery.Token{Hash: []byte("t"), Account: f.Account, FlowID: f.ID, ExpiresAt: clk.Now().Add(time.Hour)}
	if won, err := g.Right(ctx, f.ClientIP, f, tok); err != nil || !won {
		t.Fatalf("Right: %v, %v", won, err)
	}
	if got := trips.All.Load() - before; got != 1 {
		t.Errorf("a right code: %d round trips, want 1", got)
	}
	if v, err := r.Client().Get(ctx, r.counterKey(limiter.ScopeEntered, "+316123")).Int64(); err != nil || v != 1 {
		t.Errorf("codes entered under +316123: %d, %v; want 1", v, err)
	}
}
