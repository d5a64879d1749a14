package storage

import (
	"context"
	"time"
)

// TrailEntry is one event in the trail of a support reference (see
// recovery.TraceRef): what support sees of a flow or a refusal. It never
// holds a code, a token, a password or a full phone number; the account
// only when the gateway logs accounts in clear (log_accounts clear).
type TrailEntry struct {
	// Ref is the support reference the entry is filed under.
	Ref string    `json:"-"`
	At  time.Time `json:"at"`
	// Event is the security event (recovery.Event* names, sms_sent and the
	// other SMS outcomes), or "answered" for the answer to a refusal.
	Event string `json:"event"`
	// Status, Error and RetryAfter are an answered refusal's HTTP status,
	// error code and Retry-After in seconds.
	Status      int    `json:"status,omitempty"`
	Error       string `json:"error,omitempty"`
	RetryAfter  int64  `json:"retry_after,omitempty"`
	Scope       string `json:"scope,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Phone       string `json:"phone,omitempty"` // masked
	ClientIP    string `json:"client_ip,omitempty"`
	AccountHash string `json:"account_hash,omitempty"`
	Account     string `json:"account,omitempty"`
	Site        string `json:"site,omitempty"`
}

// backgroundKey marks the context of work done off the request path.
type backgroundKey struct{}

// Background returns ctx marked as the context of work done off the
// request path (the trails' writes), which a count of a request's round
// trips to a server leaves out (storagetest.RedisTrips).
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

// TrailMax is the most entries a store keeps for one reference: the newest.
// A flow makes a few dozen at most; a reference someone floods with
// refusals keeps its latest.
const TrailMax = 32

// Trails is a store that keeps the trails of support references, each
// entry for the time given, TrailMax of them per reference at most, within
// a bound of the store's own, across every instance that shares the store.
// The gateway appends off the request path, in batches; a store that
// cannot take a batch returns an error and the batch is lost, counted.
type Trails interface {
	// AppendTrail adds entries to their references' trails, each of which
	// then lives for ttl after its last entry.
	AppendTrail(ctx context.Context, entries []TrailEntry, ttl time.Duration) error
	// Trail returns the entries of a reference, oldest first: none, and no
	// error, for a reference the store does not hold.
	Trail(ctx context.Context, ref string) ([]TrailEntry, error)
}
