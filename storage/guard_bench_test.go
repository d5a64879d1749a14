package storage

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	uredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// guardBench is a guard and the store its requests change, in one of two
// ways: "steps" is the guard over a counter store of its own and the store's
// locks, each request a call per check and per change, as before plans;
// "plan" is the guard over the store as a limiter.PlanStore, each request
// one plan.
type guardBench struct {
	guard *limiter.Guard
	store interface {
		recovery.Store
		limiter.LockStore
	}
	trips *storagetest.RedisTrips // nil for memory
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

func newGuardBench(b *testing.B, backend, mode string) *guardBench {
	b.Helper()
	clk := clock.Real{}
	gb := &guardBench{}
	var counters ulimiter.Store
	switch backend {
	case "memory":
		m, err := NewMemory(100_000, clk)
		if err != nil {
			b.Fatal(err)
		}
		gb.store = m
		if counters, err = limiter.NewLRUStore(limiter.DefaultMaxKeys, clk); err != nil {
			b.Fatal(err)
		}
	case "redis":
		r := newTestRedis(b, clk)
		gb.trips = &storagetest.RedisTrips{}
		r.Client().AddHook(gb.trips)
		gb.store = r
		var err error
		if counters, err = uredis.NewStoreWithOptions(r.Client(), ulimiter.StoreOptions{Prefix: r.prefix + "limit"}); err != nil {
			b.Fatal(err)
		}
	}
	var locks limiter.LockStore = gb.store
	if mode == "steps" {
		locks = struct{ limiter.LockStore }{gb.store} // its locks alone: no plans
	}
	g, err := limiter.New(benchGuardConfig(), counters, locks, clk)
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

// start is the work of POST /start once the account is looked up.
func (gb *guardBench) start(ctx context.Context, mode string, i int) error {
	f := benchFlow(i, fmt.Sprintf("user%d@example.com", i%1000))
	f.ClientIP = benchIP(i % 1000)
	if mode == "plan" {
		return gb.guard.StartFlow(ctx, f.ClientIP, f)
	}
	if err := gb.guard.Start(ctx, f.ClientIP, f.Account); err != nil {
		return err
	}
	return gb.store.CreateFlow(ctx, f)
}

// wrongCode is the work of POST /verify with a wrong code, up to comparing.
func (gb *guardBench) wrongCode(ctx context.Context, mode, id, ip string) error {
	if mode == "plan" {
		_, _, err := gb.guard.VerifyFlow(ctx, ip, id, 1<<30)
		return err
	}
	f, err := gb.store.Flow(ctx, id)
	if err != nil {
		return err
	}
	if err := gb.guard.Verify(ctx, ip, f.Account); err != nil {
		return err
	}
	if f, err = gb.store.Attempt(ctx, id, 1<<30); err != nil {
		return err
	}
	_, err = gb.guard.Guess(ctx, ip, f.Account)
	return err
}

// BenchmarkGuard measures the limits and the state change of a request,
// both ways, and on Redis the round trips each takes: /start once the
// account is looked up, /verify with a wrong code up to the comparison, and
// the check the SMS queue makes before delivering a code.
func BenchmarkGuard(b *testing.B) {
	ctx := context.Background()
	for _, backend := range []string{"memory", "redis"} {
		for _, mode := range []string{"steps", "plan"} {
			run := func(name string, op func(gb *guardBench) func(i int) error) {
				b.Run(backend+"/"+name+"/"+mode, func(b *testing.B) {
					if backend == "redis" {
						requireRedis(b)
					}
					gb := newGuardBench(b, backend, mode)
					do := op(gb)
					var trips0 int64
					if gb.trips != nil {
						trips0 = gb.trips.All.Load()
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := range b.N {
						if err := do(i); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					if gb.trips != nil {
						b.ReportMetric(float64(gb.trips.All.Load()-trips0)/float64(b.N), "round-trips/op")
					}
				})
			}
			run("Start", func(gb *guardBench) func(int) error {
				return func(i int) error { return gb.start(ctx, mode, i) }
			})
			run("WrongCode", func(gb *guardBench) func(int) error {
				f := benchFlow(0, "alice@example.com")
				if err := gb.store.CreateFlow(ctx, f); err != nil {
					b.Fatal(err)
				}
				return func(i int) error { return gb.wrongCode(ctx, mode, f.ID, benchIP(i%1000)) }
			})
			run("SMS", func(gb *guardBench) func(int) error {
				return func(i int) error { return gb.guard.SMS(ctx, fmt.Sprintf("phone-%d", i%1000)) }
			})
		}
	}
}
