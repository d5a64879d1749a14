package sms

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// BenchmarkQueueSustained offers a queue 2,000 codes a second for two
// seconds, as a gateway under a sustained load of /start for real accounts
// within their budgets would, with the module's holdback (20ms) and a
// provider that takes 150ms to answer each request. It reports the share of
// codes refused by a full queue (the goal: none), the rate actually
// offered, and the 99th percentile of the time from Send to sent; with the
// workers of the earlier default (4) and with DefaultWorkers.
func BenchmarkQueueSustained(b *testing.B) {
	const (
		rate     = 2000
		duration = 2 * time.Second
		answer   = 150 * time.Millisecond
	)
	d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
		return sleep(ctx, answer)
	})
	for _, workers := range []int{4, DefaultWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var offered, full atomic.Int64
			var mu sync.Mutex
			var latencies []time.Duration
			var elapsed time.Duration
			observe := func(o Outcome) {
				switch o.Result {
				case ResultSent:
					mu.Lock()
					latencies = append(latencies, o.Latency)
					mu.Unlock()
				case ResultQueueFull:
					full.Add(1)
				}
			}
			for b.Loop() {
				q := NewQueue(d, QueueConfig{Size: 1000, Workers: workers, Holdback: 20 * time.Millisecond, Observe: observe})
				m := testMessage
				m.ExpiresAt = time.Now().Add(time.Hour)
				start := time.Now()
				tick := time.NewTicker(time.Millisecond)
				sent := int64(0)
				for now := start; now.Sub(start) < duration; now = <-tick.C {
					// Catch up to the rate, however late the tick.
					for due := int64(now.Sub(start).Seconds() * rate); sent < due; sent++ {
						_ = q.Send(context.Background(), m)
					}
				}
				tick.Stop()
				elapsed += time.Since(start)
				offered.Add(sent)
				// What is still queued after a second is let go: only the
				// drops from a full queue count.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = q.Close(ctx)
				cancel()
			}
			slices.Sort(latencies)
			p99 := time.Duration(0)
			if len(latencies) > 0 {
				p99 = latencies[len(latencies)*99/100]
			}
			b.ReportMetric(100*float64(full.Load())/float64(offered.Load()), "%queue-full")
			b.ReportMetric(float64(offered.Load())/elapsed.Seconds(), "offered/s")
			b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
		})
	}
}
