// Package wake lets tests wait for what another goroutine reports, such as
// an SMS reaching the outbox, rather than for time to pass.
package wake

import (
	"sync"
	"time"
)

// Signal wakes goroutines that wait for something another goroutine
// reports. Its channel is closed and replaced at every broadcast: a waiter
// takes Next before it looks at what it waits for, so nothing reported
// between the look and the wait is missed. It is safe for concurrent use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// New returns a Signal.
func New() *Signal { return &Signal{ch: make(chan struct{})} }

// Next returns a channel that is closed at the next broadcast.
func (s *Signal) Next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Broadcast wakes every waiter.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// Await calls done at once and again after every broadcast until it
// reports true, and reports false if timeout passes first: the timeout
// ends a wait for an event that does not come, it never decides one.
func (s *Signal) Await(timeout time.Duration, done func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		woken := s.Next()
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
