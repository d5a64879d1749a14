// Package sms delivers the text messages of the recovery flow.
//
// A Queue implements recovery.Sender: it takes messages without waiting on
// the network and hands them, from a fixed number of workers, to a Deliverer,
// retrying failures worth retrying and holding off a failing provider with a
// circuit breaker.
//
// The Deliverers are the sender modules of Namespace, one package each:
// messagebird, over Bird's legacy REST API or its platform API as the key
// says; http, one request from templates to any gateway's API (Kannel's
// sendsms, say); outbox, which appends each message to a file for
// development and tests; and failover, a Router that tries senders of its
// own in order, each behind its own breaker. A new provider is one more
// such package (see Namespace). Package report reads the delivery reports
// providers send back.
//
// The Queue gives every message an idempotency key that each of its tries
// carries in its context (IdempotencyKey), and waits out the Retry-After a
// provider answers with (Error.RetryAfter).
//
// Outcomes are reported to an observer as Outcome values that carry the
// message's reference and masked phone number only, and each try at a
// provider as a Try. Nothing here or in a
// sender may log, or put in an error, a message body (it holds a one-time
// code), a full phone number or an access key; the outbox file is the one
// deliberate exception and must never be used in production. No goroutine
// started here outlives Queue.Close. This package does not import Caddy.
package sms
