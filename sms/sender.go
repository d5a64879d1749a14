package sms

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Namespace is the Caddy module namespace of SMS senders. The gateway
// loads one from its "sms" field, whose "provider" names the module:
// {"provider": "outbox", "path": "sms-outbox.jsonl"} loads
// http.handlers.sms_recovery.senders.outbox.
//
// A sender is one package below sms/ whose one type is both the module and
// the Deliverer: its exported JSON fields are the settings; Provision
// expands their placeholders, fills defaults and builds the client;
// Validate checks; Cleanup, if it holds anything, frees it. The gateway
// keeps the Queue in front of a sender across config reloads, keyed by
// the module's ID and a SHA-256 of its JSON: the queue keeps delivering
// through the sender that started it after Caddy has cleaned that sender
// up, and calls its Cleanup again once the queue has drained. So Deliver
// must still work after Cleanup, and settings must be exported JSON
// fields, which never appear in the clear in the key.
const Namespace = "http.handlers.sms_recovery.senders"

// Deliverer hands one message to a provider and waits for its answer. It
// returns an *Error with Permanent set when retrying the same message cannot
// succeed; any other error is taken as worth retrying.
//
// Under a Queue, ctx carries the message's idempotency key
// (IdempotencyKey): the same on every try of one message, different for
// every message. A Deliverer whose provider drops repeated requests by key
// sends it; one that hands the message on to other Deliverers passes ctx
// on, so that however many providers try a message, they all name it by
// one key.
type Deliverer interface {
	Deliver(ctx context.Context, m recovery.Message) error
}

// Error is a delivery that a provider refused or that could not reach it.
// Its text holds neither the message body nor the phone number.
type Error struct {
	Provider  string // e.g. "messagebird"
	Status    int    // HTTP status of the provider's answer; 0 when there was none
	Code      int    // the provider's own error code; 0 when it gave none
	Parameter string // the request parameter the provider blamed, if any
	Permanent bool   // retrying the same message cannot succeed
	// RetryAfter is how long the provider asked to be left alone before
	// another try (its Retry-After header); the Queue waits at least that
	// long. 0 when it named no wait.
	RetryAfter time.Duration
	// Detail is the provider's own account of the failure, with the
	// recipient's number, the message's text and the key taken out.
	Detail string
	Err    error // the underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, "status %d", e.Status)
	case e.Err == nil:
		b.WriteString("delivery failed")
	default:
		b.WriteString("request failed")
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", error code %d", e.Code)
	}
	if e.Parameter != "" {
		fmt.Fprintf(&b, " (parameter %s)", e.Parameter)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// InProcess is implemented by a Deliverer that delivers in this process,
// with no request to a provider to bound (the outbox): the queue then
// gives it no timeout of its own.
type InProcess interface {
	InProcess() bool
}

// Router is a Deliverer that hands each message on to providers of its
// own, each behind a Breaker of its own (the failover sender). A Queue in
// front of a Router keeps no breaker and sets no timeout of its own: the
// Router bounds each of its tries, reports each under the ctx it was
// given (ReportTry), and answers a try when every one of its providers is
// resting with an error wrapping ErrCircuitOpen.
type Router interface {
	Deliverer
	// CircuitOpen reports whether no provider may be tried now: every
	// breaker is open.
	CircuitOpen() bool
}

// Try is one try of a message at one provider, or one skipped because the
// provider's breaker was open. It never holds the body or the phone
// number.
type Try struct {
	Provider  string // the sender module's name, such as "messagebird"
	Position  int    // the provider's place in its failover, from 1; 1 for a lone sender
	Result    Result // ResultSent, ResultRejected, ResultFailed or ResultCircuitOpen
	Status    int    // the provider's HTTP status, if it answered and refused
	Reference string // the message's Reference
	Err       error  // why it failed; nil when sent
}

// tryObserver is the context key of the function that Try values go to.
type tryObserver struct{}

// WithTryObserver returns a copy of ctx under which ReportTry hands each
// Try to observe. A Queue gives its own (QueueConfig.ObserveTry) to every
// delivery.
func WithTryObserver(ctx context.Context, observe func(Try)) context.Context {
	return context.WithValue(ctx, tryObserver{}, observe)
}

// ReportTry hands t to the observer of ctx, if it has one.
func ReportTry(ctx context.Context, t Try) {
	if observe, ok := ctx.Value(tryObserver{}).(func(Try)); ok && observe != nil {
		observe(t)
	}
}

// idempotencyKey is the context key of a message's idempotency key.
type idempotencyKey struct{}

// IdempotencyKey returns the idempotency key of the message being
// delivered under ctx, or "" when ctx carries none (a Deliverer called
// outside a Queue).
func IdempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKey{}).(string)
	return k
}

// WithIdempotencyKey returns a copy of ctx that carries key as the
// idempotency key of the message delivered under it. The Queue gives every
// message its own; a caller that delivers without a Queue, a test say,
// names one itself and keeps it for every try of the same message.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}
