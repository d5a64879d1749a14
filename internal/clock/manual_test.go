package clock

import (
	"sync"
	"testing"
	"time"
)

func TestManual(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewManual(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now: got %v, want %v", got, start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Second) })
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Second); !got.Equal(want) {
		t.Errorf("Now after ten concurrent Advance(1s): got %v, want %v", got, want)
	}
	c.Advance(-time.Minute)
	if got, want := c.Now(), start.Add(-50*time.Second); !got.Equal(want) {
		t.Errorf("Now after Advance(-1m): got %v, want %v", got, want)
	}
	later := start.Add(72 * time.Hour)
	c.Set(later)
	if got := c.Now(); !got.Equal(later) {
		t.Errorf("Now after Set: got %v, want %v", got, later)
	}
}
