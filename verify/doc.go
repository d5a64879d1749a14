// Package verify holds http.handlers.sms_recovery_verify, the handler for an
// upstream that sits behind a Caddy of its own: it passes a request on only
// if it carries a valid, unused signature from the sms_recovery gateway
// (SPEC §6), and answers 401 otherwise.
package verify
