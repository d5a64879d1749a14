package sms

import (
	"context"
	"fmt"
	"strings"

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
	Err       error  // the underlying cause, if any
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
