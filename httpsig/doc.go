// Package httpsig signs and verifies the gateway's forwarded password reset
// as SPEC §6 fixes it: an RFC 9421 HTTP Message Signature labelled
// "recovery" over "@method", "@path", "content-digest" and
// "x-recovery-account", with an RFC 9530 sha-256 Content-Digest of the body,
// created, expires (at most 60 s later), a random nonce, keyid, alg
// ("hmac-sha256" or "ed25519") and tag "sms-recovery".
//
// The gateway signs with a Signer; an upstream written in Go, and the
// sms_recovery_verify Caddy handler, check with a Verifier, which also
// refuses a nonce it has already accepted. It remembers nonces in a
// NonceStore: a NonceCache in this process's memory by default, or the
// Redis store of the subpackage redisnonce, which every instance of the
// upstream shares and which outlives their restarts. testdata/vectors.json
// holds test vectors for upstreams written in other languages.
//
// Structured fields (RFC 8941) are parsed and serialized by
// github.com/dunglas/httpsfv, the library Caddy itself is built with.
//
// It is plain Go: it must never import Caddy or the rest of the project, so
// an upstream can use it alone; nor a database client, which only
// redisnonce brings in, for the upstreams that use it. It must never log, and never put a key, a
// signature or a request body in an error message. It takes time and
// randomness from its callers instead of reading global sources.
package httpsig
