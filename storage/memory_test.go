package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func memoryHarness(maxEntries int) storagetest.Harness {
	return storagetest.Harness{
		New: func(tb testing.TB) (storagetest.Store, storagetest.Clock) {
			clk := storagetest.NewManualClock(epoch)
			m, err := NewMemory(maxEntries, clk)
			if err != nil {
				tb.Fatal(err)
			}
			return m, clk
		},
		Unit: time.Minute,
	}
}

func TestMemoryContract(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, memoryHarness(1000))
}

func TestNewMemoryRefuses(t *testing.T) {
	t.Parallel()
	clk := storagetest.NewManualClock(epoch)
	tests := []struct {
		name       string
		maxEntries int
		clock      recovery.Clock
	}{
		{"zero entries", 0, clk},
		{"negative entries", -1, clk},
		{"no clock", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if m, err := NewMemory(tt.maxEntries, tt.clock); err == nil {
				t.Errorf("NewMemory(%d, %v) = %v, want an error", tt.maxEntries, tt.clock, m)
			}
		})
	}
}

func TestMemoryBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max, extra = 10, 5
	clk := storagetest.NewManualClock(epoch)
	m, err := NewMemory(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	token := recovery.Token{Hash: []byte("h"), ExpiresAt: epoch.Add(time.Hour)}
	lock := limiter.Lock{Kind: limiter.KindAccount, Key: "alice", Since: epoch, Until: epoch.Add(time.Hour)}
	if err := m.PutToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := m.SetLock(ctx, lock); err != nil {
		t.Fatal(err)
	}

	flow := func(i int) string { return fmt.Sprintf("f%02d", i) }
	for i := range max + extra {
		if i == max {
			// Reading f00 makes it the most recently used, so f01 goes
			// first instead.
			if _, err := m.Flow(ctx, flow(0)); err != nil {
				t.Fatalf("Flow(%s): %v", flow(0), err)
			}
		}
		if err := m.CreateFlow(ctx, recovery.Flow{ID: flow(i), ExpiresAt: epoch.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	if n := m.flows.Len(); n != max {
		t.Errorf("flows held: got %d, want %d", n, max)
	}
	for i := range max + extra {
		_, err := m.Flow(ctx, flow(i))
		evicted := i >= 1 && i <= extra
		switch {
		case evicted && !errors.Is(err, recovery.ErrNotFound):
			t.Errorf("Flow(%s): got %v, want it evicted", flow(i), err)
		case !evicted && err != nil:
			t.Errorf("Flow(%s): %v", flow(i), err)
		}
	}
	// The flood of flows pushed out neither the token nor the lock.
	if _, err := m.BeginSpend(ctx, token.Hash, time.Minute); err != nil {
		t.Errorf("BeginSpend after the flood: %v", err)
	}
	if _, ok, _ := m.GetLock(ctx, lock.Kind, lock.Key); !ok {
		t.Error("lock evicted by the flood of flows")
	}
}

func BenchmarkMemory(b *testing.B) {
	storagetest.Benchmark(b, memoryHarness(100_000))
}
