package memory

import (
	"context"
	"errors"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestMemoryImposeInFullTable: an imposed lock needs a record like a
// strike does. A full table lets the cheapest run that never locked go to
// make room for it, and forgets no lock: once it holds nothing but locks, a
// lock on a new key is refused with ErrFull and changes nothing.
func TestMemoryImposeInFullTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	m, err := New(2, clk)
	if err != nil {
		t.Fatal(err)
	}
	run := recovery.Policy{Threshold: 5, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour, Run: true, Permanent: 100}
	lockNow := run
	lockNow.Threshold = 1
	if st, err := storagetest.Strike(ctx, m, recovery.KindAccount, "a@example.com", lockNow); err != nil || !st.Set {
		t.Fatalf("locking a: %+v, %v", st, err)
	}
	if _, err := storagetest.Strike(ctx, m, recovery.KindAccount, "b@example.com", run); err != nil {
		t.Fatal(err)
	}
	l, set, err := m.Impose(ctx, recovery.KindAccount, "c@example.com", 0)
	if err != nil || !set || !l.Permanent {
		t.Fatalf("Impose on a new key, the table full of a lock and a cheap run: %+v, %v, %v; want a lasting lock", l, set, err)
	}
	if m.locks.records[lockID{recovery.KindAccount, "b@example.com"}] != nil {
		t.Error("the cheap run was kept, and the table over its bound")
	}
	if _, _, err := m.Impose(ctx, recovery.KindAccount, "d@example.com", 0); !errors.Is(err, recovery.ErrFull) {
		t.Fatalf("Impose on a new key in a table of locks: %v, want ErrFull", err)
	}
	if _, ok, _ := storagetest.GetLock(ctx, m, recovery.KindAccount, "d@example.com"); ok {
		t.Error("a refused Impose left a lock")
	}
	if _, ok, _ := storagetest.GetLock(ctx, m, recovery.KindAccount, "a@example.com"); !ok {
		t.Error("a lock was let go to make room")
	}
	// Years later the imposed lock still holds.
	clk.Advance(5 * 365 * 24 * time.Hour)
	if _, ok, _ := storagetest.GetLock(ctx, m, recovery.KindAccount, "c@example.com"); !ok {
		t.Error("the lasting lock ended by itself")
	}
}
