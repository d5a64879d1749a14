package storagetest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// BenchmarkGuard measures the limits and the state change of a request
// through a guard on the store newStore makes (on the real clock, with
// every limit out of reach), and with trips the round trips each takes:
// /start, /verify with a wrong code up to the comparison, and the check
// the SMS queue makes before delivering a notice. newStore returns a fresh
// store for each, and the RedisTrips hooked to its client, or nil.
func BenchmarkGuard(b *testing.B, newStore func(b *testing.B) (Store, *RedisTrips)) {
	ctx := context.Background()
	run := func(name string, op func(g *limiter.Guard, s Store) func(i int) error) {
		b.Run(name, func(b *testing.B) {
			s, trips := newStore(b)
			g, err := limiter.New(benchGuardConfig(), s, clock.Real{})
			if err != nil {
				b.Fatal(err)
			}
			do := op(g, s)
			var trips0 int64
			if trips != nil {
				trips0 = trips.All.Load()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := do(i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if trips != nil {
				b.ReportMetric(float64(trips.All.Load()-trips0)/float64(b.N), "round-trips/op")
			}
		})
	}
	run("Start", func(g *limiter.Guard, _ Store) func(int) error {
		// A thousand clients and accounts, each start replacing the flow
		// of the same ID, so that the table stays below any bound.
		return func(i int) error {
			f := benchFlow(i%1000, fmt.Sprintf("user%d@example.com", i%1000))
			return StartFlow(ctx, g, f.ClientIP, f)
		}
	})
	run("WrongCode", func(g *limiter.Guard, s Store) func(int) error {
		f := benchFlow(0, "alice@example.com")
		if err := CreateFlow(ctx, s, f); err != nil {
			b.Fatal(err)
		}
		return func(i int) error {
			_, _, err := g.Verify(ctx, benchIP(i%1000), f.ID, 1<<30)
			return err
		}
	})
	run("SMS", func(g *limiter.Guard, _ Store) func(int) error {
		return func(i int) error { return g.SMS(ctx, fmt.Sprintf("phone-%d", i%1000), "") }
	})
}

// benchGuardConfig is the default configuration with every limit out of
// reach, so that each request does all its work.
func benchGuardConfig() limiter.Config {
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	c := limiter.DefaultConfig()
	c.StartIP, c.StartAccount, c.StartPhone, c.VerifyIP, c.SMSGlobal = high, high, high, high, high
	c.Lockout = limiter.Threshold{Failures: 1 << 40, Window: time.Hour, Duration: time.Hour}
	c.IPBlock = c.Lockout
	c.PermanentAfter = 1 << 40
	return c
}

// benchIP is the i-th client address.
func benchIP(i int) string {
	return net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String()
}

func benchFlow(i int, account string) recovery.Flow {
	now := time.Now()
	return recovery.Flow{
		ID: fmt.Sprintf("bench-%d", i), Account: account, CodeHash: []byte("0123456789abcdef0123456789abcdef"),
		Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		ClientIP: benchIP(i), PublicURL: "https://mail.example.com", PhoneMasked: "+31*******78",
	}
}
