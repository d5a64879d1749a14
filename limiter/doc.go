// Package limiter is the abuse layer of the recovery flow: per-client,
// per-account and per-phone rate limits, a global SMS budget, account
// lockouts and client IP blocks after wrong codes, the conversion breaker
// that blocks the codes to a destination prefix whose codes are not
// entered, and the listing and lifting of those locks and blocks for
// support. Guard implements recovery.Guard: it turns each request into one
// recovery.Plan, which its recovery.Store runs as one atomic step, and the
// Outcome into a refusal. The decisions a store takes inside that step are
// pure functions of a record, counts and the time (Strike, Forgive, Expiry,
// Impose, Refuses, Trips), so that every store decides alike.
//
// It never imports Caddy, never chooses an HTTP status, never logs, and
// never reads the wall clock except through the injected recovery.Clock. It
// must never keep state without a bound or an expiry, never let one
// person's success reset another's counters, never create a counter for a
// request that an earlier limit refused, and never put a phone number, code
// or token in an error.
package limiter
