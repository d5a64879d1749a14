package redisstore

import (
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// BenchmarkGuard measures a request's limits and state change on Redis,
// and the round trips each takes (see storagetest.BenchmarkGuard).
func BenchmarkGuard(b *testing.B) {
	requireRedis(b)
	storagetest.BenchmarkGuard(b, func(b *testing.B) (storagetest.Store, *storagetest.RedisTrips) {
		r := newTestRedis(b, clock.Real{})
		trips := &storagetest.RedisTrips{}
		r.Client().AddHook(trips)
		return r, trips
	})
}
