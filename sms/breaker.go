package sms

import (
	"sync"
	"time"
)

type breakerState int

const (
	breakerClosed   breakerState = iota // requests go through
	breakerOpen                         // requests are refused until the cool-down ends
	breakerHalfOpen                     // one probe goes through; its result decides
)

// breaker is a circuit breaker: after threshold consecutive failures it
// opens and refuses every request for cooldown, then lets a single probe
// through. A successful probe closes it; a failed one opens it again.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	state     breakerState
	failures  int       // consecutive failures while closed
	openUntil time.Time // end of the cool-down while open
	probing   bool      // a probe is in flight while half-open
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown}
}

// allow reports whether a request may go out now. Every request it allows
// must be followed by exactly one call of success, failure or release.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerOpen:
		if now.Before(b.openUntil) {
			return false
		}
		b.state = breakerHalfOpen
		b.probing = true
		return true
	case breakerHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	default:
		return true
	}
}

// isOpen reports whether the breaker is open or half-open: it has not
// closed since it last opened.
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state != breakerClosed
}

// success records that the provider answered.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = breakerClosed
	b.failures = 0
	b.probing = false
}

// failure records that the provider could not be reached or failed.
func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerHalfOpen:
		b.open(now)
	case breakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.open(now)
		}
	}
	// Failures of requests allowed before the breaker opened do not extend
	// the cool-down.
}

// release records a request that ended without telling anything about the
// provider, e.g. because the queue was shutting down.
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerHalfOpen {
		b.probing = false
	}
}

func (b *breaker) open(now time.Time) {
	b.state = breakerOpen
	b.openUntil = now.Add(b.cooldown)
	b.failures = 0
	b.probing = false
}
