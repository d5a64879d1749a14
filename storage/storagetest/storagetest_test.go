package storagetest

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestManualClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewManualClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now: got %v, want %v", got, start)
	}
	concurrently(10, func(int) { c.Advance(time.Second) })
	if got, want := c.Now(), start.Add(10*time.Second); !got.Equal(want) {
		t.Errorf("Now after ten concurrent Advance(1s): got %v, want %v", got, want)
	}
}

func TestRealClock(t *testing.T) {
	t.Parallel()
	var c RealClock
	before := c.Now()
	c.Advance(20 * time.Millisecond)
	if elapsed := c.Now().Sub(before); elapsed < 20*time.Millisecond {
		t.Errorf("Advance(20ms) let %v pass", elapsed)
	}
}

func TestConcurrently(t *testing.T) {
	t.Parallel()
	var sum atomic.Int64
	concurrently(100, func(i int) { sum.Add(int64(i)) })
	if got := sum.Load(); got != 4950 {
		t.Errorf("sum of the indexes: got %d, want 4950", got)
	}
}
