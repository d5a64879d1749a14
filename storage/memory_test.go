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

// TestMemoryFlowFlood floods a small flow table many times over from
// hundreds of addresses: the flow a person started before it stays, since
// every flooder holds more flows than the person.
func TestMemoryFlowFlood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 100
	clk := storagetest.NewManualClock(epoch)
	m, err := NewMemory(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	live := epoch.Add(time.Hour)
	mine := recovery.Flow{ID: "person", ClientIP: "198.51.100.7", ExpiresAt: live}
	token := recovery.Token{Hash: []byte("h"), ExpiresAt: live}
	if err := m.CreateFlow(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if err := m.PutToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	// 300 addresses, a sixth of them IPv6 /64s, each starting ten flows: the
	// table fills 30 times over.
	for round := range 10 {
		for a := range 300 {
			ip := fmt.Sprintf("203.0.%d.%d", a/250, a%250)
			if a%6 == 0 {
				ip = fmt.Sprintf("2001:db8:%x::%x", a, round+1) // a new address in the same /64
			}
			f := recovery.Flow{ID: fmt.Sprintf("flood-%d-%d", a, round), ClientIP: ip, ExpiresAt: live}
			if err := m.CreateFlow(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := m.flows.Len(); n != max {
		t.Errorf("flows held: got %d, want %d", n, max)
	}
	if _, err := m.Flow(ctx, mine.ID); err != nil {
		t.Errorf("the person's flow after the flood: %v", err)
	}
	if _, err := m.BeginSpend(ctx, token.Hash, time.Minute); err != nil {
		t.Errorf("BeginSpend after the flood: %v", err)
	}
}

// TestMemoryFlowEviction checks whom a full flow table takes from.
func TestMemoryFlowEviction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := storagetest.NewManualClock(epoch)
	m, err := NewMemory(4, clk)
	if err != nil {
		t.Fatal(err)
	}
	create := func(id, ip string, ttl time.Duration) {
		t.Helper()
		if err := m.CreateFlow(ctx, recovery.Flow{ID: id, ClientIP: ip, ExpiresAt: clk.Now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	held := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if m.flows.get(id) == nil {
				t.Errorf("flow %s was evicted", id)
			}
		}
		if n := m.flows.Len(); n != len(ids) {
			t.Errorf("flows held: got %d, want %d", n, len(ids))
		}
	}
	create("short", "192.0.2.1", time.Minute)
	create("b1", "192.0.2.2", time.Hour)
	create("b2", "192.0.2.2", time.Hour)
	create("c1", "192.0.2.3", time.Hour)
	clk.Advance(2 * time.Minute)
	// The oldest flow of all has expired: it goes first.
	create("d1", "192.0.2.4", time.Hour)
	held("b1", "b2", "c1", "d1")
	// Then the oldest flow of the client holding the most.
	create("d2", "192.0.2.4", time.Hour)
	held("b2", "c1", "d1", "d2")
	create("c2", "192.0.2.3", time.Hour)
	if m.flows.get("c2") == nil || m.flows.get("c1") == nil {
		t.Error("a client holding one flow lost it to one holding two")
	}
	// Whether the account exists plays no part: a decoy is a flow like any.
	create("e1", "2001:db8::1", time.Hour)
	create("e2", "2001:db8::2", time.Hour) // the same /64
	if m.flows.get("e1") == nil && m.flows.get("e2") == nil {
		t.Error("the /64 lost both its flows")
	}
	if n := m.flows.Len(); n != 4 {
		t.Errorf("flows held: got %d, want 4", n)
	}
}

// TestMemoryLocksNeverEvicted fills the security state: a full table refuses
// new keys rather than forget one, keeps counting the keys it holds, and
// makes room only as clients' records end.
func TestMemoryLocksNeverEvicted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 10
	clk := storagetest.NewManualClock(epoch)
	m, err := NewMemory(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	account := limiter.Policy{Threshold: 1, Window: time.Hour, Duration: time.Minute, MaxDuration: time.Hour, Run: true, Permanent: 100}
	client := limiter.Policy{Threshold: 20, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour}
	if st, err := m.Strike(ctx, limiter.KindAccount, "target@example.com", account); err != nil || !st.Set {
		t.Fatalf("locking the target: %+v, %v", st, err)
	}
	for i := range max - 1 {
		if _, err := m.Strike(ctx, limiter.KindIP, fmt.Sprintf("192.0.2.%d", i), client); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a new key is refused, however often it is tried.
	for range 3 {
		if _, err := m.Strike(ctx, limiter.KindIP, "203.0.113.1", client); !errors.Is(err, recovery.ErrFull) {
			t.Fatalf("strike for a new key in a full table: got %v, want ErrFull", err)
		}
		clk.Advance(2 * sweepEvery)
	}
	if _, ok, _ := m.GetLock(ctx, limiter.KindAccount, "target@example.com"); !ok {
		t.Fatal("the lock was forgotten")
	}
	if st, err := m.Strike(ctx, limiter.KindIP, "192.0.2.0", client); err != nil || st.Lock.Strikes != 2 {
		t.Errorf("strike for a key the full table holds: %+v, %v, want counted", st, err)
	}
	// The clients' windows end; the account's run does not.
	clk.Advance(2 * time.Hour)
	if _, err := m.Strike(ctx, limiter.KindIP, "203.0.113.1", client); err != nil {
		t.Errorf("strike once clients' records ended: %v", err)
	}
	if st, err := m.Strike(ctx, limiter.KindAccount, "target@example.com", account); err != nil || st.Lock.Strikes != 2 || st.Lock.Locks != 2 {
		t.Errorf("the target's run after the lock ended: %+v, %v, want 2 strikes in a row and a second lock", st, err)
	}
}

func BenchmarkMemory(b *testing.B) {
	storagetest.Benchmark(b, memoryHarness(100_000))
}
