package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// TestTrailFloodIsBounded floods the trails with more references than the
// store keeps: the index and the trails on the server stay within
// TrailRefs, every key has a time to live, and the newest trail stays.
func TestTrailFloodIsBounded(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	r := newTestRedis(t, clock.Real{})
	ctx := context.Background()
	const batchSize = 1000
	total := TrailRefs + 2*batchSize
	for i := 0; i < total; i += batchSize {
		batch := make([]storage.TrailEntry, batchSize)
		for j := range batch {
			batch[j] = storage.TrailEntry{Ref: fmt.Sprintf("F%09d", i+j), At: time.Now(), Event: "request_refused"}
		}
		if err := r.AppendTrail(ctx, batch, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.client.ZCard(ctx, r.trailIndex()).Val(); n != TrailRefs {
		t.Errorf("index holds %d trails, want %d", n, TrailRefs)
	}
	keys, err := r.client.Keys(ctx, r.base+"trail:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != TrailRefs {
		t.Errorf("server holds %d trails, want %d", len(keys), TrailRefs)
	}
	for _, k := range append(keys[:10], r.trailIndex()) {
		if ttl := r.client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s has time to live %s", k, ttl)
		}
	}
	if got, _ := r.Trail(ctx, fmt.Sprintf("F%09d", total-1)); len(got) != 1 {
		t.Errorf("the newest trail holds %d entries, want 1", len(got))
	}
	if got, _ := r.Trail(ctx, fmt.Sprintf("F%09d", 0)); len(got) != 0 {
		t.Errorf("the oldest trail survived the flood with %d entries", len(got))
	}
}
