package memory

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// heapAfterGC returns the heap in use once a collection is done.
func heapAfterGC() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestMemoryFootprint fills each table of a Store with records shaped as
// the gateway makes them and checks that none takes more heap than the
// figure the soft memory limit is derived from. It runs alone (not in
// parallel), so that the heap it reads is its own.
func TestMemoryFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: fills tables of 20,000 records")
	}
	const n = 20_000
	ctx := context.Background()
	m, err := New(n, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	lockout := limiter.DefaultConfig().Lockout
	policy := recovery.Policy{Threshold: lockout.Failures, Window: lockout.Window, Duration: lockout.Duration}
	check := func(table string, limit int64, records int, fill func(i int)) {
		t.Helper()
		before := heapAfterGC()
		for i := range records {
			fill(i)
		}
		per := float64(heapAfterGC()-before) / float64(records)
		t.Logf("%s: %.0f bytes a record (allowed %d)", table, per, limit)
		if per > float64(limit) {
			t.Errorf("%s: %.0f bytes a record, over the %d the soft memory limit allows", table, per, limit)
		}
	}
	check("flows", flowRecordBytes, n, func(i int) {
		if err := storagetest.CreateFlow(ctx, m, floodFlow(i)); err != nil {
			t.Fatal(err)
		}
	})
	check("tokens", tokenRecordBytes, n, func(i int) {
		hash := make([]byte, 32)
		_, _ = rand.Read(hash)
		tok := recovery.Token{Hash: hash, Account: fmt.Sprintf("nobody%d@load.example", i), FlowID: floodFlow(i).ID, ExpiresAt: time.Now().Add(time.Hour)}
		// As a right code stores it, but with no flow of its own: the flow
		// table is full already.
		m.mu.Lock()
		m.putToken(tok)
		m.mu.Unlock()
	})
	check("locks", lockRecordBytes, n, func(i int) {
		if _, err := storagetest.Strike(ctx, m, "lockout", fmt.Sprintf("nobody%d@load.example", i), policy); err != nil {
			t.Fatal(err)
		}
	})
	counters := counterBound(n)
	check("counters", counterRecordBytes, counters, func(i int) {
		m.counters.count(m.flows.keys.scoped(limiter.ScopeStartIP, fmt.Sprint(i)), ulimiter.Rate{Limit: 10, Period: time.Hour}, 1, time.Now())
	})
	if m.flows.Len() != n || m.tokens.Len() != n || len(m.locks.records) != n || m.counters.Len() != counters {
		t.Fatalf("tables not full: %d flows, %d tokens, %d locks, %d counters", m.flows.Len(), m.tokens.Len(), len(m.locks.records), m.counters.Len())
	}
	runtime.KeepAlive(m)
}

// TestReserveMemory checks the soft memory limit: the base and the
// reservations while they are held, the earlier limit back after the last
// release, a limit in force before never raised, and one the operator set
// with GOMEMLIMIT never touched.
func TestReserveMemory(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // restored after the test
	os.Unsetenv("GOMEMLIMIT")
	prior := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prior) })

	const mib = 1 << 20
	release := reserve(200 * mib)
	floor := 2 * liveHeap()
	want := max(int64(memLimitBase+200*mib), floor)
	if got := debug.SetMemoryLimit(-1); got != min(want, prior) {
		t.Fatalf("limit with 200 MiB reserved: %d, want %d", got, min(want, prior))
	}
	release2 := reserve(100 * mib)
	if got, want := debug.SetMemoryLimit(-1), min(max(int64(memLimitBase+300*mib), 2*liveHeap()), prior); got != want {
		t.Fatalf("limit with 300 MiB reserved: %d, want %d", got, want)
	}
	if got, ok := SoftMemoryLimit(); !ok || got != debug.SetMemoryLimit(-1) {
		t.Fatalf("SoftMemoryLimit = %d, %v", got, ok)
	}
	release()
	release() // a second release changes nothing
	if got, want := debug.SetMemoryLimit(-1), min(max(int64(memLimitBase+100*mib), 2*liveHeap()), prior); got != want {
		t.Fatalf("limit with 100 MiB left: %d, want %d", got, want)
	}
	release2()
	if got := debug.SetMemoryLimit(-1); got != prior {
		t.Fatalf("limit after the last release: %d, want the earlier %d", got, prior)
	}
	if _, ok := SoftMemoryLimit(); ok {
		t.Fatal("SoftMemoryLimit reports a limit with nothing reserved")
	}

	// A limit in force before (Caddy's, from the cgroup) is never raised.
	debug.SetMemoryLimit(150 * mib)
	release = reserve(1 << 30)
	if got := debug.SetMemoryLimit(-1); got != 150*mib {
		t.Fatalf("limit raised from 150 MiB to %d", got)
	}
	release()
	if got := debug.SetMemoryLimit(-1); got != 150*mib {
		t.Fatalf("limit after release: %d, want 150 MiB", got)
	}
	debug.SetMemoryLimit(prior)

	// The operator's GOMEMLIMIT is left alone.
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	release = reserve(10 * mib)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("operator's limit changed to %d", got)
	}
	if _, ok := SoftMemoryLimit(); ok {
		t.Fatal("SoftMemoryLimit claims the operator's limit")
	}
	release()
}

// TestModuleReservesFootprint checks that an open memory store holds its
// footprint in the soft limit, and gives it back on Close; and that one
// whose soft_memory_limit is off leaves the runtime's limit alone.
func TestModuleReservesFootprint(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	prior := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prior) })
	open := func(settings *Store) *storage.Opened {
		t.Helper()
		m, err := guesttest.Load(t, settings)
		if err != nil {
			t.Fatal(err)
		}
		st, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	st := open(&Store{MaxEntries: 1_000_000})
	got, ok := SoftMemoryLimit()
	if want := int64(memLimitBase) + footprint(1_000_000); !ok || got < want {
		t.Fatalf("limit with a store of a million entries open: %d, %v; want at least %d", got, ok, want)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := SoftMemoryLimit(); ok {
		t.Fatal("the store's reservation outlived Close")
	}

	off := false
	st = open(&Store{MaxEntries: 1_000_000, SoftMemoryLimit: &off})
	defer st.Close()
	if got, ok := SoftMemoryLimit(); ok {
		t.Fatalf("a store with soft_memory_limit off set the limit to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != prior {
		t.Fatalf("a store with soft_memory_limit off changed the limit from %d to %d", prior, got)
	}
}
