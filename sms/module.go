package sms

// Namespace is the Caddy module namespace of SMS senders. The gateway
// loads one from its "sms" field, whose "provider" names the module:
// {"provider": "outbox", "path": "sms-outbox.jsonl"} loads
// http.handlers.sms_recovery.senders.outbox.
//
// A sender module holds settings only. Its Provision expands placeholders
// and checks them; it must not open connections or files, since the
// gateway keeps the queue in front of a deliverer across config reloads,
// longer than any one module value lives. The module implements
// DelivererFactory, and the gateway calls NewDeliverer only when no queue
// for the same settings exists yet: it keys its pool by the module's ID
// and a SHA-256 of its JSON encoding, so settings must be exported JSON
// fields, and never appear in the clear in the key.
const Namespace = "http.handlers.sms_recovery.senders"

// DelivererFactory is a provisioned sender module.
type DelivererFactory interface {
	// NewDeliverer returns a Deliverer for the module's settings, and a
	// function, which may be nil, that frees what it holds once the queue
	// in front of it has drained.
	NewDeliverer() (d Deliverer, release func(), err error)
}
