package limiter_test

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

const mib = 1 << 20

// BenchmarkStartFlood floods the start path of a guard on a memory store at
// its defaults with 1,000,000 distinct client addresses, each asking for a
// distinct account, and reports the peak heap sampled during the flood and
// the starts refused for want of room (the account budgets, which are
// never dropped while their window is open, fill up). It then checks that
// the guard still serves a person who started before the flood, still
// sends codes, and still enforces limits and blocks set before the flood.
func BenchmarkStartFlood(b *testing.B) {
	const (
		clients     = 1_000_000
		sampleEvery = 10_000
		maxHeap     = 256 * mib
	)
	var peak, base uint64
	var refused int
	var ms runtime.MemStats
	// b.N rather than b.Loop: go1.26.8's compiler crashes (internal
	// compiler error) on this body inside a b.Loop loop.
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base = ms.HeapAlloc

		g := newTestGuard(b, limiter.DefaultConfig())
		for i := range int(limiter.DefaultConfig().IPBlock.Failures) {
			_ = g.fail("203.0.113.66", "victim"+strconv.Itoa(i))
		}
		if err := g.Start(ctx, "192.0.2.1", "alice@example.com"); err != nil {
			b.Fatalf("legitimate start before the flood: %v", err)
		}

		refused = 0
		for i := range clients {
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
			switch err := g.Start(ctx, ip, "user"+strconv.Itoa(i)+"@example.com"); {
			case errors.Is(err, recovery.ErrFull):
				refused++
			case err != nil:
				b.Fatalf("flood start %d: %v", i, err)
			}
			if i%sampleEvery == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)

		if err := g.Start(ctx, "203.0.113.66", "someone"); !errors.Is(err, recovery.ErrBlocked) {
			b.Fatalf("blocked client after the flood: %v, want still blocked", err)
		}
		for i := range 2 {
			if err := g.Start(ctx, "192.0.2.1", "alice@example.com"); err != nil {
				b.Fatalf("legitimate start %d after the flood: %v", i+2, err)
			}
		}
		if err := g.SMS(ctx, "+31612345678", ""); err != nil {
			b.Fatalf("legitimate sms after the flood: %v", err)
		}
		if err := g.Start(ctx, "192.0.2.1", "alice@example.com"); !errors.Is(err, recovery.ErrRateLimited) {
			b.Fatalf("fourth start for one account after the flood: %v, want rate limited", err)
		}
		runtime.KeepAlive(g)
	}
	b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
	b.ReportMetric(float64(peak-base)/mib, "heap-growth-MiB")
	b.ReportMetric(float64(refused), "refused-starts")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*clients), "ns/start")
	if peak > maxHeap {
		b.Fatalf("peak heap %.0f MiB, want under %d MiB", float64(peak)/mib, maxHeap/mib)
	}
}

// BenchmarkStartParallel measures Start from many goroutines over 4096
// clients and accounts on a memory store, on the wall clock: "allowed" with
// limits too high to refuse, "refused" with the defaults, where nearly
// every start is over start_ip.
func BenchmarkStartParallel(b *testing.B) {
	const n = 4096
	ips, accounts := make([]string, n), make([]string, n)
	for i := range n {
		ips[i] = fmt.Sprintf("2001:db8:%x::1", i)
		accounts[i] = fmt.Sprintf("user%d@example.com", i)
	}
	open := limiter.DefaultConfig()
	open.StartIP.Events, open.StartAccount.Events = math.MaxInt64, math.MaxInt64
	for _, bc := range []struct {
		name string
		cfg  limiter.Config
	}{
		{"allowed", open},
		{"refused", limiter.DefaultConfig()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			clk := clock.Real{}
			store, err := memory.New(memory.DefaultMaxEntries, clk)
			if err != nil {
				b.Fatal(err)
			}
			g, err := limiter.New(bc.cfg, store, clk)
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Uint64
			unexpected := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					// A decoy's flow that ends at once: the table never fills.
					f := recovery.Flow{ID: strconv.FormatUint(i, 36), Account: accounts[(i*7)%n], CodeHash: []byte("h"),
						Decoy: true, ExpiresAt: time.Now().Add(time.Millisecond), ClientIP: ips[i%n]}
					_, err := g.StartFlow(ctx, ips[i%n], f, "decoy")
					if err != nil && (bc.name == "allowed" || !errors.Is(err, recovery.ErrRateLimited)) {
						select {
						case unexpected <- err:
						default:
						}
					}
				}
			})
			select {
			case err := <-unexpected:
				b.Fatalf("start: %v", err)
			default:
			}
		})
	}
}
