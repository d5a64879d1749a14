package storagetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// runTrails checks support's trails, for a store that keeps them.
func runTrails(t *testing.T, h Harness) {
	trails := func(t *testing.T) (storage.Trails, Clock) {
		s, clk := h.New(t)
		tr, ok := s.(storage.Trails)
		if !ok {
			t.Skip("the store keeps no trails")
		}
		return tr, clk
	}
	entry := func(ref, event string, clk Clock) storage.TrailEntry {
		return storage.TrailEntry{Ref: ref, At: clk.Now().UTC().Truncate(time.Millisecond), Event: event,
			Phone: "+31*****678", AccountHash: "0123456789abcdef"}
	}
	ctx := context.Background()

	t.Run("OneTrailPerReference", func(t *testing.T) {
		t.Parallel()
		s, clk := trails(t)
		batch := []storage.TrailEntry{entry("AAAAA-AAAAA", "flow_started", clk), entry("BBBBB-BBBBB", "flow_started", clk),
			entry("AAAAA-AAAAA", "wrong_code", clk)}
		if err := s.AppendTrail(ctx, batch, 10*h.Unit); err != nil {
			t.Fatal(err)
		}
		got, err := s.Trail(ctx, "AAAAA-AAAAA")
		if err != nil || len(got) != 2 || got[0].Event != "flow_started" || got[1].Event != "wrong_code" {
			t.Fatalf("Trail(AAAAA-AAAAA) = %+v, %v; want its two entries in order", got, err)
		}
		if !got[0].At.Equal(batch[0].At) || got[0].Phone != batch[0].Phone || got[0].AccountHash != batch[0].AccountHash || got[0].Ref != "AAAAA-AAAAA" {
			t.Errorf("entry read back as %+v, written as %+v", got[0], batch[0])
		}
		if got, err := s.Trail(ctx, "BBBBB-BBBBB"); err != nil || len(got) != 1 {
			t.Errorf("Trail(BBBBB-BBBBB) = %+v, %v; want its one entry", got, err)
		}
		if got, err := s.Trail(ctx, "CCCCC-CCCCC"); err != nil || len(got) != 0 {
			t.Errorf("Trail of an unknown reference = %+v, %v; want nothing", got, err)
		}
	})

	t.Run("KeepsTheNewest", func(t *testing.T) {
		t.Parallel()
		s, clk := trails(t)
		var batch []storage.TrailEntry
		for i := range storage.TrailMax + 5 {
			batch = append(batch, entry("AAAAA-AAAAA", fmt.Sprint("e", i), clk))
		}
		if err := s.AppendTrail(ctx, batch, 10*h.Unit); err != nil {
			t.Fatal(err)
		}
		got, err := s.Trail(ctx, "AAAAA-AAAAA")
		if err != nil || len(got) != storage.TrailMax || got[0].Event != "e5" || got[len(got)-1].Event != fmt.Sprint("e", storage.TrailMax+4) {
			t.Fatalf("flooded trail holds %d entries (%v), want the newest %d", len(got), err, storage.TrailMax)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		s, clk := trails(t)
		if err := s.AppendTrail(ctx, []storage.TrailEntry{entry("AAAAA-AAAAA", "flow_started", clk)}, 3*h.Unit); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * h.Unit)
		// A new entry keeps the trail for another ttl.
		if err := s.AppendTrail(ctx, []storage.TrailEntry{entry("AAAAA-AAAAA", "wrong_code", clk)}, 3*h.Unit); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * h.Unit)
		if got, err := s.Trail(ctx, "AAAAA-AAAAA"); err != nil || len(got) != 2 {
			t.Fatalf("trail within its ttl = %+v, %v; want both entries", got, err)
		}
		clk.Advance(2 * h.Unit)
		if got, err := s.Trail(ctx, "AAAAA-AAAAA"); err != nil || len(got) != 0 {
			t.Fatalf("trail after its ttl = %+v, %v; want nothing", got, err)
		}
	})
}
