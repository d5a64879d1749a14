package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// TestTrailFloodIsBounded floods the trails with many references, many
// entries each: the store never holds more than its bound, and what stays
// is the trails written last.
func TestTrailFloodIsBounded(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := New(1000, clk)
	if err != nil {
		t.Fatal(err)
	}
	bound := trailBound(1000)
	ctx := context.Background()
	for i := range 5000 {
		ref := fmt.Sprintf("F%04d-00000", i)
		batch := make([]storage.TrailEntry, 3)
		for j := range batch {
			batch[j] = storage.TrailEntry{Ref: ref, At: clk.Now(), Event: "request_refused"}
		}
		if err := m.AppendTrail(ctx, batch, time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := m.trailEntries(); n > bound {
			t.Fatalf("after %d references the store holds %d trail entries, bound %d", i+1, n, bound)
		}
	}
	if got, _ := m.Trail(ctx, "F4999-00000"); len(got) != 3 {
		t.Errorf("the newest trail holds %d entries, want 3", len(got))
	}
	if got, _ := m.Trail(ctx, "F0000-00000"); len(got) != 0 {
		t.Errorf("the oldest trail survived the flood with %d entries", len(got))
	}
	// A trail that fills its own bound keeps the newest and counts right.
	batch := make([]storage.TrailEntry, storage.TrailMax*3)
	for j := range batch {
		batch[j] = storage.TrailEntry{Ref: "G0000-00000", At: clk.Now(), Event: fmt.Sprint(j)}
	}
	if err := m.AppendTrail(ctx, batch, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := m.trailEntries(); n > bound {
		t.Fatalf("the store holds %d trail entries, bound %d", n, bound)
	}
	got, _ := m.Trail(ctx, "G0000-00000")
	if len(got) != storage.TrailMax || got[len(got)-1].Event != fmt.Sprint(len(batch)-1) {
		t.Errorf("a flooded trail holds %d entries ending %q", len(got), got[len(got)-1].Event)
	}
}
