package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func memoryHarness(maxEntries int) storagetest.Harness {
	return storagetest.Harness{
		New: func(tb testing.TB) (storagetest.Store, storagetest.Clock) {
			clk := clock.NewManual(epoch)
			m, err := New(maxEntries, clk)
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

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(epoch)
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
			if m, err := New(tt.maxEntries, tt.clock); err == nil {
				t.Errorf("New(%d, %v) = %v, want an error", tt.maxEntries, tt.clock, m)
			}
		})
	}
}

// TestMemoryFlowFlood floods a small flow table many times over from
// hundreds of addresses, after a person started and before another does:
// the first person's flow stays, the flood is refused once the table is
// full, and the second person gets room as soon as a flow ends.
func TestMemoryFlowFlood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 100
	clk := clock.NewManual(epoch)
	m, err := New(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	live := epoch.Add(time.Hour)
	mine := recovery.Flow{ID: "person", ClientIP: "198.51.100.7", ExpiresAt: live}
	token := recovery.Token{Hash: []byte("h"), ExpiresAt: live}
	if err := storagetest.CreateFlow(ctx, m, mine); err != nil {
		t.Fatal(err)
	}
	if err := storagetest.PutToken(ctx, m, token); err != nil {
		t.Fatal(err)
	}
	// 300 addresses, a sixth of them IPv6 /64s, each starting ten flows: 30
	// times what the table holds.
	refused := 0
	for round := range 10 {
		for a := range 300 {
			ip := fmt.Sprintf("203.0.%d.%d", a/250, a%250)
			if a%6 == 0 {
				ip = fmt.Sprintf("2001:db8:%x::%x", a, round+1) // a new address in the same /64
			}
			f := recovery.Flow{ID: fmt.Sprintf("flood-%d-%d", a, round), ClientIP: ip, ExpiresAt: live.Add(-time.Minute)}
			switch err := storagetest.CreateFlow(ctx, m, f); {
			case errors.Is(err, recovery.ErrFull):
				refused++
			case err != nil:
				t.Fatal(err)
			}
		}
	}
	if n := m.flows.Len(); n != max {
		t.Errorf("flows held: got %d, want %d", n, max)
	}
	if want := 3000 - (max - 1); refused != want {
		t.Errorf("flood flows refused: %d, want %d", refused, want)
	}
	if _, err := m.Flow(ctx, mine.ID); err != nil {
		t.Errorf("the person's flow after the flood: %v", err)
	}
	if _, err := m.BeginSpend(ctx, token.Hash, time.Minute); err != nil {
		t.Errorf("BeginSpend after the flood: %v", err)
	}
	// A second person, after the flood: refused, not given someone's place.
	late := recovery.Flow{ID: "late", ClientIP: "192.0.2.200", ExpiresAt: live.Add(time.Hour)}
	if err := storagetest.CreateFlow(ctx, m, late); !errors.Is(err, recovery.ErrFull) {
		t.Fatalf("a start into a full table: %v, want ErrFull", err)
	}
	// A flow that ends makes room for her.
	if won, err := storagetest.Consume(ctx, m, "flood-1-0"); err != nil || !won {
		t.Fatalf("consuming a flood flow: %v %v", won, err)
	}
	if err := storagetest.CreateFlow(ctx, m, late); err != nil {
		t.Fatalf("a start once a flow ended: %v", err)
	}
	// Once the flood's flows expire, starts find room again.
	clk.Advance(time.Hour)
	if err := storagetest.CreateFlow(ctx, m, recovery.Flow{ID: "after", ClientIP: "192.0.2.201", ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("a start once the flood expired: %v", err)
	}
	if _, err := m.Flow(ctx, late.ID); err != nil {
		t.Errorf("the second person's flow: %v", err)
	}
}

// TestMemoryFlowRoom checks whom a filling flow table refuses: past the
// high water mark, clients holding the most; at the top, everyone; never a
// flow already held.
func TestMemoryFlowRoom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	m, err := New(16, clk) // high water: 14
	if err != nil {
		t.Fatal(err)
	}
	create := func(id, ip string, ttl time.Duration) error {
		t.Helper()
		return storagetest.CreateFlow(ctx, m, recovery.Flow{ID: id, ClientIP: ip, ExpiresAt: clk.Now().Add(ttl)})
	}
	must := func(id, ip string, ttl time.Duration) {
		t.Helper()
		if err := create(id, ip, ttl); err != nil {
			t.Fatalf("flow %s from %s: %v", id, ip, err)
		}
	}
	refused := func(id, ip string) {
		t.Helper()
		if err := create(id, ip, time.Hour); !errors.Is(err, recovery.ErrFull) {
			t.Fatalf("flow %s from %s: %v, want ErrFull", id, ip, err)
		}
	}
	must("short", "192.0.2.1", time.Minute)
	for i := range 6 {
		must(fmt.Sprintf("big%d", i), "192.0.2.2", time.Hour)
	}
	for i := range 7 {
		must(fmt.Sprintf("one%d", i), fmt.Sprintf("198.51.100.%d", i), time.Hour)
	}
	// 14 flows: the client holding six is refused, one holding one is not.
	refused("big6", "192.0.2.2")
	must("one-more", "198.51.100.100", time.Hour)
	must("second", "198.51.100.0", time.Hour)
	// 16: full. Nobody gets in, and nothing held goes.
	refused("new", "203.0.113.1")
	// The oldest flow expires: it goes, and a client holding none gets in.
	clk.Advance(2 * time.Minute)
	must("new", "203.0.113.1", time.Hour)
	for _, id := range []string{"big0", "big5", "one0", "one6", "one-more", "second", "new"} {
		if m.flows.get(id) == nil {
			t.Errorf("flow %s was dropped", id)
		}
	}
	// Whether the account exists plays no part: a decoy is a flow like any,
	// and the IPv6 addresses of one /64 are one client.
	m2, _ := New(8, clk) // high water: 7
	for i := range 7 {
		if err := storagetest.CreateFlow(ctx, m2, recovery.Flow{ID: fmt.Sprintf("v6-%d", i), ClientIP: fmt.Sprintf("2001:db8::%x", i+1), Decoy: i%2 == 0, ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := storagetest.CreateFlow(ctx, m2, recovery.Flow{ID: "v6-7", ClientIP: "2001:db8::ff", ExpiresAt: clk.Now().Add(time.Hour)}); !errors.Is(err, recovery.ErrFull) {
		t.Errorf("the /64 holding the most past high water: %v, want ErrFull", err)
	}
	if err := storagetest.CreateFlow(ctx, m2, recovery.Flow{ID: "person", ClientIP: "2001:db8:1::1", ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
		t.Errorf("another /64 past high water: %v", err)
	}
}

// TestMemoryLocksNeverEvicted fills the security state: a full table lets
// go of the cheapest run to make room, never a lock or the run behind one,
// and refuses a new key only once every record is a lock.
func TestMemoryLocksNeverEvicted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 10
	clk := clock.NewManual(epoch)
	m, err := New(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	account := recovery.Policy{Threshold: 1, Window: time.Hour, Duration: time.Minute, MaxDuration: time.Hour, Run: true, Permanent: 100}
	client := recovery.Policy{Threshold: 2, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour}
	if st, err := storagetest.Strike(ctx, m, recovery.KindAccount, "target@example.com", account); err != nil || !st.Set {
		t.Fatalf("locking the target: %+v, %v", st, err)
	}
	for i := range max - 1 {
		if _, err := storagetest.Strike(ctx, m, recovery.KindIP, fmt.Sprintf("192.0.2.%d", i), client); err != nil {
			t.Fatal(err)
		}
	}
	// Full of one-strike runs and a lock: a new key takes the place of the
	// run struck least recently, however often it comes.
	for i := range 3 * max {
		if _, err := storagetest.Strike(ctx, m, recovery.KindIP, fmt.Sprintf("203.0.113.%d", i), client); err != nil {
			t.Fatalf("strike %d for a new key in a table full of cheap runs: %v", i, err)
		}
	}
	if _, ok, _ := storagetest.GetLock(ctx, m, recovery.KindAccount, "target@example.com"); !ok {
		t.Fatal("the lock was let go to make room")
	}
	if n := m.locks.Len(); n != max {
		t.Errorf("records held: %d, want %d", n, max)
	}
	// Now lock every client the table holds: no record may go.
	for i := 3*max - (max - 1); i < 3*max; i++ {
		if st, err := storagetest.Strike(ctx, m, recovery.KindIP, fmt.Sprintf("203.0.113.%d", i), client); err != nil || !st.Set {
			t.Fatalf("blocking client %d: %+v, %v", i, st, err)
		}
	}
	for range 3 {
		if _, err := storagetest.Strike(ctx, m, recovery.KindIP, "198.51.100.1", client); !errors.Is(err, recovery.ErrFull) {
			t.Fatalf("strike for a new key in a table of locks: got %v, want ErrFull", err)
		}
		clk.Advance(2 * sweepEvery)
	}
	if _, ok, _ := storagetest.GetLock(ctx, m, recovery.KindAccount, "target@example.com"); !ok {
		t.Fatal("the lock was forgotten")
	}
	// The clients' blocks end; the account's run does not.
	clk.Advance(2 * time.Hour)
	if _, err := storagetest.Strike(ctx, m, recovery.KindIP, "198.51.100.1", client); err != nil {
		t.Errorf("strike once clients' records ended: %v", err)
	}
	if st, err := storagetest.Strike(ctx, m, recovery.KindAccount, "target@example.com", account); err != nil || st.Lock.Strikes != 2 || st.Lock.Locks != 2 {
		t.Errorf("the target's run after the lock ended: %+v, %v, want 2 strikes in a row and a second lock", st, err)
	}
}

// TestMemoryCheapestRunGoesFirst floods a full table with one-strike runs
// of made-up accounts: a person's run of three wrong codes outlives them
// all, and of equal runs the one struck least recently goes first.
func TestMemoryCheapestRunGoesFirst(t *testing.T) {
	t.Parallel()
	const max = 50
	clk := clock.NewManual(epoch)
	m, err := New(max, clk)
	if err != nil {
		t.Fatal(err)
	}
	account := recovery.Policy{Threshold: 5, Window: time.Hour, Duration: time.Minute, MaxDuration: time.Hour, Run: true, Permanent: 100}
	for range 3 {
		mustStrike(t, m, recovery.KindAccount, "person@example.com", account)
	}
	mustStrike(t, m, recovery.KindAccount, "old@example.com", account)
	clk.Advance(time.Second)
	mustStrike(t, m, recovery.KindAccount, "recent@example.com", account)
	for i := range max - 3 {
		mustStrike(t, m, recovery.KindAccount, fmt.Sprintf("made-up-%d@example.com", i), account)
	}
	// One more new key: "old" goes, being the one-strike run struck first.
	mustStrike(t, m, recovery.KindAccount, "one-more@example.com", account)
	if m.locks.records[lockID{recovery.KindAccount, "old@example.com"}] != nil {
		t.Error("the least recently struck one-strike run was kept")
	}
	if m.locks.records[lockID{recovery.KindAccount, "recent@example.com"}] == nil {
		t.Error("a more recent one-strike run went before the oldest")
	}
	// A flood ten times the table's size.
	for i := range 10 * max {
		mustStrike(t, m, recovery.KindAccount, fmt.Sprintf("flood-%d@example.com", i), account)
	}
	st := mustStrike(t, m, recovery.KindAccount, "person@example.com", account)
	if st.Lock.Strikes != 4 {
		t.Errorf("the person's run after the flood: %d strikes, want 4 (3 kept and this one)", st.Lock.Strikes)
	}
}

// TestMemoryChurnHandsBackNoBudget spends an account's start_account and a
// phone's start_phone, then churns a small store with 300 starts and
// codes for made-up accounts and phones from 75 addresses, the flows
// expiring as they go: both budgets hold, since budgets are never dropped
// for room; the churn is refused instead once the budgets fill the table.
func TestMemoryChurnHandsBackNoBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	m, err := New(10, clk)
	if err != nil {
		t.Fatal(err)
	}
	cfg := limiter.DefaultConfig()
	cfg.StartIP = limiter.Rate{Events: 1000, Window: time.Hour}
	cfg.SMSGlobal = limiter.Rate{Events: 100000, Window: time.Hour}
	g, err := limiter.New(cfg, m, clk)
	if err != nil {
		t.Fatal(err)
	}
	flow := func(id, account, ip string) recovery.Flow {
		return recovery.Flow{ID: id, Account: account, ClientIP: ip, ExpiresAt: clk.Now().Add(time.Minute)}
	}
	for i := range 3 {
		if err := storagetest.StartFlow(ctx, g, "192.0.2.1", flow(fmt.Sprint("mine", i), "alice@example.com", "192.0.2.1")); err != nil {
			t.Fatalf("her start %d: %v", i, err)
		}
		if err := g.SMS(ctx, "+31612345678", ""); err != nil {
			t.Fatalf("her SMS %d: %v", i, err)
		}
	}
	full := 0
	for i := range 300 {
		if i%8 == 0 {
			clk.Advance(61 * time.Second) // the flood's flows expire
		}
		ip := fmt.Sprintf("198.51.%d.%d", i/4/250, i/4%250)
		err := storagetest.StartFlow(ctx, g, ip, flow(fmt.Sprint("churn", i), fmt.Sprintf("churn-%d@example.com", i), ip))
		if err == nil {
			err = g.SMS(ctx, fmt.Sprintf("+3161%07d", i), "")
		}
		var d *recovery.Denial
		switch {
		case errors.As(err, &d) && errors.Is(d, recovery.ErrFull):
			full++
		case err != nil:
			t.Fatalf("churn %d: %v", i, err)
		}
	}
	if clk.Now().Sub(epoch) >= time.Hour {
		t.Fatal("the churn outlasted the budgets' window")
	}
	var d *recovery.Denial
	if err := storagetest.StartFlow(ctx, g, "192.0.2.9", flow("mine-after", "alice@example.com", "192.0.2.9")); !errors.As(err, &d) || d.Scope != limiter.ScopeStartAccount {
		t.Errorf("her start after the churn: %v, want start_account refused", err)
	}
	if err := g.SMS(ctx, "+31612345678", ""); !errors.As(err, &d) || d.Scope != limiter.ScopeStartPhone {
		t.Errorf("a code to her phone after the churn: %v, want start_phone refused", err)
	}
	if full == 0 {
		t.Error("the churn met no full table: it did not try the bound")
	}
}

func mustStrike(t *testing.T, m *Store, kind, key string, p recovery.Policy) recovery.Strike {
	t.Helper()
	st, err := storagetest.Strike(context.Background(), m, kind, key, p)
	if err != nil {
		t.Fatalf("strike %s %s: %v", kind, key, err)
	}
	return st
}

func BenchmarkMemory(b *testing.B) {
	storagetest.Benchmark(b, memoryHarness(100_000))
}

// BenchmarkGuard measures a request's limits and state change on a store
// of the default bound (see storagetest.BenchmarkGuard).
func BenchmarkGuard(b *testing.B) {
	storagetest.BenchmarkGuard(b, func(b *testing.B) (storagetest.Store, *storagetest.RedisTrips) {
		m, err := New(DefaultMaxEntries, clock.Real{})
		if err != nil {
			b.Fatal(err)
		}
		return m, nil
	})
}
