package wake

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestAwait checks that a waiter sees what is reported before or while it
// waits, and gives up at its timeout when nothing comes.
func TestAwait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New()
		var n atomic.Int64
		done := make(chan bool)
		go func() { done <- s.Await(time.Minute, func() bool { return n.Load() >= 3 }) }()
		for range 3 {
			synctest.Wait() // the waiter is parked
			n.Add(1)
			s.Broadcast()
		}
		if !<-done {
			t.Fatal("Await gave up although the third report came")
		}
		n.Store(10)
		if !s.Await(time.Minute, func() bool { return n.Load() == 10 }) {
			t.Fatal("Await missed a report made before it was called")
		}
		start := time.Now()
		if s.Await(time.Minute, func() bool { return false }) || time.Since(start) != time.Minute {
			t.Fatalf("Await with nothing reported: gave up after %v, want its timeout", time.Since(start))
		}
	})
}
