// Package verify holds http.handlers.sms_recovery_verify, the handler for an
// upstream that sits behind a Caddy of its own: it passes a request on only
// if it carries a valid, unused signature from the sms_recovery gateway
// (SPEC §6), and answers 401 otherwise.
//
// "Unused" is as wide as the nonce store: the guest modules of
// NonceStoreNamespace, memory (this process, the default) and redis
// (every instance that shares the server and prefix, across restarts).
// A store that cannot answer makes the handler refuse with 503, never pass
// a request it could not record.
package verify
