// Package limiter is the abuse layer of the recovery flow: per-client,
// per-account and per-phone rate limits, a global SMS budget, account
// lockouts and client IP blocks after wrong codes, and the listing and
// lifting of those locks for support. Guard implements recovery.Guard over
// a ulule limiter.Store for counters and a LockStore for locks; LRUStore is
// a bounded in-memory counter store.
//
// It makes decisions only: it never imports Caddy, never chooses an HTTP
// status, never logs, and never reads the wall clock except through the
// injected recovery.Clock. It must never keep state without a bound or an
// expiry, never let one person's success reset another's counters, never
// create a counter for a request that an earlier limit refused, and never
// put a phone number, code or token in an error.
package limiter
