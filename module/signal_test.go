package module

import (
	"sync"
	"time"
)

// awaitTimeout ends a wait for an event that does not come: it fails a
// test, it never decides one.
const awaitTimeout = 10 * time.Second

// signal wakes goroutines that wait for something another goroutine
// reports. Its channel is closed and replaced at every broadcast: a waiter
// takes next() before it looks at what it waits for, so nothing reported
// between the look and the wait is missed.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// next returns a channel that is closed at the next broadcast.
func (s *signal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// await calls done at once and again after every broadcast until it
// reports true, and reports false if timeout passes first.
func (s *signal) await(timeout time.Duration, done func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		woken := s.next()
		if done() {
			return true
		}
		select {
		case <-woken:
		case <-timer.C:
			return false
		}
	}
}
