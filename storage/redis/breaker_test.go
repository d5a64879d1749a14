package redisstore

import (
	"testing"

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
