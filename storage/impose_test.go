package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// TestMemoryImposeInFullTable: an imposed lock needs a record like a
// strike does, and a full table forgets none to make room: a lock on a new
// key is refused with ErrFull and changes nothing, while a key the table
// holds can still be locked.
func TestMemoryImposeInFullTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := storagetest.NewManualClock(epoch)
	m, err := NewMemory(2, clk)
	if err != nil {
		t.Fatal(err)
	}
	run := limiter.Policy{Threshold: 5, Window: time.Hour, Duration: time.Hour, MaxDuration: time.Hour, Run: true, Permanent: 100}
	for _, a := range []string{"a@example.com", "b@example.com"} {
		if _, err := m.Strike(ctx, limiter.KindAccount, a, run); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := m.Impose(ctx, limiter.KindAccount, "c@example.com", 0); !errors.Is(err, recovery.ErrFull) {
		t.Fatalf("Impose on a new key in a full table: %v, want ErrFull", err)
	}
	if _, ok, _ := m.GetLock(ctx, limiter.KindAccount, "c@example.com"); ok {
		t.Error("a refused Impose left a lock")
	}
	l, set, err := m.Impose(ctx, limiter.KindAccount, "a@example.com", 0)
	if err != nil || !set || !l.Permanent || l.Strikes != 1 {
		t.Fatalf("Impose on a key the full table holds: %+v, %v, %v; want a lasting lock keeping its strike", l, set, err)
	}
	// Years later the runs are still there, and the lock still holds.
	clk.Advance(5 * 365 * 24 * time.Hour)
	if _, ok, _ := m.GetLock(ctx, limiter.KindAccount, "a@example.com"); !ok {
		t.Error("the lasting lock ended by itself")
	}
}
