package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// BenchmarkMemoryFlood measures what a memory store at its defaults holds
// once a flood of /start from distinct clients for distinct accounts has
// filled every table: the live heap after a collection, and its cost per
// record (flows and rate counters together). It runs the plans /start and
// the SMS check run, with the account, phone and SMS budgets lifted as the
// compare harness lifts them, so every start stores a flow and counts three
// keys. Run it with -benchtime 1x.
func BenchmarkMemoryFlood(b *testing.B) {
	const starts = 400_000 // past both bounds: 100,000 flows, 250,000 counters
	ctx := context.Background()
	clk := clock.Real{}
	cfg := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	cfg.StartAccount, cfg.StartPhone, cfg.SMSGlobal = high, high, high
	var live, perRecord float64
	refused := 0
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := New(DefaultMaxEntries, clk)
		if err != nil {
			b.Fatal(err)
		}
		g, err := limiter.New(cfg, m, clk)
		if err != nil {
			b.Fatal(err)
		}
		refused = 0
		b.StartTimer()
		for i := range starts {
			f := floodFlow(i)
			err := storagetest.StartFlow(ctx, g, f.ClientIP, f)
			if err == nil {
				err = g.SMS(ctx, fmt.Sprintf("+316%08d", 20_000_000+i), "")
			}
			switch {
			case errors.Is(err, recovery.ErrFull):
				refused++
			case err != nil:
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		records := m.flows.Len() + m.counters.Len() + m.budgets.Len()
		live = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		perRecord = float64(after.HeapAlloc-before.HeapAlloc) / float64(records)
		runtime.KeepAlive(m)
	}
	b.ReportMetric(live, "live-MiB")
	b.ReportMetric(perRecord, "B/record")
	b.ReportMetric(float64(refused), "refused")
}

// floodFlow is the flow the i-th start of a flood stores, shaped as the
// service makes it: a random ID, a distinct account and client.
func floodFlow(i int) recovery.Flow {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	code := make([]byte, 32)
	_, _ = rand.Read(code)
	now := time.Now()
	return recovery.Flow{
		ID: base64.RawURLEncoding.EncodeToString(id), Account: fmt.Sprintf("nobody%d@load.example", i),
		CodeHash: code, Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		ClientIP:  net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String(),
		PublicURL: "https://mail.example.com/recovery/", PhoneMasked: "+31 6 ••••••78",
	}
}

// BenchmarkMemoryFlowsOneClient ends and starts flows from one address
// holding nearly every flow of a table at its high water mark, as a site
// behind one proxy address does: each op consumes the address's oldest
// flow and starts a new one, and must cost the same however many it holds.
func BenchmarkMemoryFlowsOneClient(b *testing.B) {
	ctx := context.Background()
	m, err := New(DefaultMaxEntries, clock.Real{})
	if err != nil {
		b.Fatal(err)
	}
	held := m.flows.highWater() - 1
	flows := make([]recovery.Flow, held+b.N)
	for i := range flows {
		flows[i] = floodFlow(i)
		flows[i].ClientIP = "192.0.2.1"
	}
	for _, f := range flows[:held] {
		if err := storagetest.CreateFlow(ctx, m, f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if won, err := storagetest.Consume(ctx, m, flows[i].ID); err != nil || !won {
			b.Fatalf("consuming flow %d: %v %v", i, won, err)
		}
		if err := storagetest.CreateFlow(ctx, m, flows[held+i]); err != nil {
			b.Fatal(err)
		}
	}
}
