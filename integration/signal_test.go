package integration

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
)

func init() {
	caddy.RegisterModule(smsSignal{})
}

// smsSignalHandler is the events handler that wakes tests waiting for an SMS.
const smsSignalHandler = "integration_sms_signal"

// smsOutcomeEvents are the Caddy events of every end a queued SMS can come
// to; the outbox line of a sent one is written before its event.
var smsOutcomeEvents = []string{
	"sms_recovery_sms_sent", "sms_recovery_sms_rejected", "sms_recovery_sms_retries_exhausted",
	"sms_recovery_sms_expired", "sms_recovery_sms_queue_full", "sms_recovery_sms_circuit_open",
	"sms_recovery_sms_dropped", "sms_recovery_sms_refused",
}

// smsSignal is an events handler that broadcasts every delivery outcome to
// the tests through delivered.
type smsSignal struct{}

func (smsSignal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "events.handlers." + smsSignalHandler,
		New: func() caddy.Module { return new(smsSignal) },
	}
}

func (smsSignal) Handle(context.Context, caddy.Event) error {
	outcomes.Add(1)
	delivered.broadcast()
	return nil
}

// outcomes counts the SMS outcomes of every gateway of the run.
var outcomes atomic.Int64

var _ caddyevents.Handler = (*smsSignal)(nil)

// delivered is closed-and-replaced on every SMS outcome: a waiter takes
// next(), checks what it waits for, and then waits for the channel.
var delivered = &signal{ch: make(chan struct{})}

type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

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
