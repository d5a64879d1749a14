package memory

import (
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

func TestMemoryBreaker(t *testing.T) {
	t.Parallel()
	storagetest.Breaker(t, func(tb testing.TB, clk recovery.Clock) storagetest.Store {
		m, err := New(20_000, clk)
		if err != nil {
			tb.Fatal(err)
		}
		return m
	})
}
