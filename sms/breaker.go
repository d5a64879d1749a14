package sms

import (
	"errors"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Breaker is the circuit breaker in front of one provider: the Queue's
// in front of its Deliverer, or a failover's in front of each of its
// senders. After threshold consecutive failures it opens and refuses
// every request for cooldown, then lets a single probe through. A
// successful probe closes it; a failed one opens it again.
//
// Allow reports whether a request may go out now; every request it allows
// must be followed by exactly one call of the done func it returns, with
// the request's error: nil or a permanent *Error (the provider answered)
// counts as a success, ErrAbandoned as nothing at all, anything else as a
// failure.
//
// It reads the system clock (time.Now), not QueueConfig.Clock.
type Breaker = gobreaker.TwoStepCircuitBreaker[struct{}]

// The breaker settings a Queue and a failover use when none are set.
const (
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 30 * time.Second
)

// ErrAbandoned is what a try that ended because the queue was shutting
// down reports to the breaker: it says nothing about the provider, and a
// half-open breaker lets another probe through in its place.
var ErrAbandoned = errors.New("sms delivery abandoned: queue closing")

// NewBreaker returns a closed Breaker that opens after threshold (> 0)
// consecutive failures, for cooldown.
func NewBreaker(threshold int, cooldown time.Duration) *Breaker {
	limit := uint32(min(uint64(threshold), math.MaxUint32))
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "sms",
		MaxRequests: 1,        // one probe while half-open
		Interval:    0,        // failures count until a success, however far apart
		Timeout:     cooldown, // open for this long, then half-open
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= limit
		},
		IsSuccessful: providerAnswered,
		IsExcluded: func(err error) bool {
			return errors.Is(err, ErrAbandoned)
		},
	})
}

// providerAnswered reports whether err, the result of a try, shows the
// provider up: it accepted the message, or refused it for good.
func providerAnswered(err error) bool {
	return err == nil || permanent(err)
}

// permanent reports whether err is an *Error with Permanent set. Its
// target lives here, so that a caller with no error allocates none.
func permanent(err error) bool {
	var perr *Error
	return errors.As(err, &perr) && perr.Permanent
}
