// Package sms delivers the text messages of the recovery flow.
//
// A Queue implements recovery.Sender: it takes messages without waiting on
// the network and hands them, from a fixed number of workers, to a Deliverer,
// retrying failures worth retrying and holding off a failing provider with a
// circuit breaker. Two Deliverers are provided: MessageBird, over the
// MessageBird REST API, and Outbox, which appends each message to a file for
// development and tests.
//
// Outcomes are reported to an observer as Outcome values that carry the
// message's reference and masked phone number only. Nothing in this package
// may log, or put in an error, a message body (it holds a one-time code), a
// full phone number or an access key; the Outbox file is the one deliberate
// exception and must never be used in production. No goroutine started here
// outlives Queue.Close.
//
// OutboxModule and MessageBirdModule are the Caddy guest modules of the
// namespace http.handlers.sms_recovery.senders (see Namespace and
// DelivererFactory); the files *_module.go are the only code here that
// imports Caddy.
package sms
