package redisstore

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// guardBench is a guard and the store its requests change.
type guardBench struct {
	guard *limiter.Guard
	store storagetest.Store
	trips *storagetest.RedisTrips
}

func benchGuardConfig() limiter.Config {
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	c := limiter.DefaultConfig()
	c.StartIP, c.StartAccount, c.StartPhone, c.VerifyIP, c.SMSGlobal = high, high, high, high, high
	c.Lockout = limiter.Threshold{Failures: 1 << 40, Window: time.Hour, Duration: time.Hour}
	c.IPBlock = c.Lockout
	c.PermanentAfter = 1 << 40
	return c
}

func newGuardBench(b *testing.B) *guardBench {
	b.Helper()
	clk := clock.Real{}
	gb := &guardBench{}
	r := newTestRedis(b, clk)
	gb.trips = &storagetest.RedisTrips{}
	r.Client().AddHook(gb.trips)
	gb.store = r
	g, err := limiter.New(benchGuardConfig(), gb.store, clk)
	if err != nil {
		b.Fatal(err)
	}
	gb.guard = g
	return gb
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

// start is the work of POST /start: the checks, and once the account is
// looked up, the flow and its code.
func (gb *guardBench) start(ctx context.Context, i int) error {
	f := benchFlow(i, fmt.Sprintf("user%d@example.com", i%1000))
	f.ClientIP = benchIP(i % 1000)
	return storagetest.StartFlow(ctx, gb.guard, f.ClientIP, f)
}

// BenchmarkGuard measures the limits and the state change of a request,
// and the round trips each takes: /start, /verify with a wrong
// code up to the comparison, and the check the SMS queue makes before
// delivering a notice.
func BenchmarkGuard(b *testing.B) {
	ctx := context.Background()
	for _, backend := range []string{"redis"} {
		run := func(name string, op func(gb *guardBench) func(i int) error) {
			b.Run(backend+"/"+name, func(b *testing.B) {
				requireRedis(b)
				gb := newGuardBench(b)
				do := op(gb)
				trips0 := gb.trips.All.Load()
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if err := do(i); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(gb.trips.All.Load()-trips0)/float64(b.N), "round-trips/op")
			})
		}
		run("Start", func(gb *guardBench) func(int) error {
			return func(i int) error { return gb.start(ctx, i) }
		})
		run("WrongCode", func(gb *guardBench) func(int) error {
			f := benchFlow(0, "alice@example.com")
			if err := storagetest.CreateFlow(ctx, gb.store, f); err != nil {
				b.Fatal(err)
			}
			return func(i int) error {
				_, _, err := gb.guard.Verify(ctx, benchIP(i%1000), f.ID, 1<<30)
				return err
			}
		})
		run("SMS", func(gb *guardBench) func(int) error {
			return func(i int) error { return gb.guard.SMS(ctx, fmt.Sprintf("phone-%d", i%1000)) }
		})
	}
}
