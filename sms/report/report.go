// Package report reads the delivery reports that SMS providers send back
// to the gateway, and makes the signed URLs that senders ask providers to
// send them to.
//
// A report says what became of one SMS: it reached the phone, it never
// will, or a network took it on its way. Two kinds are read:
//
//   - Kannel's DLR. A sender hands Kannel a dlr-url made by KannelURL with
//     the message; smsbox fetches it with %d replaced by the DLR type. The
//     URL carries the recipient's country, the message's Reference and a
//     tag over both (recovery.Keyring.ReportTag), so that no one but the
//     gateway can make one, and no phone number is ever in it (URLs end up
//     in access logs).
//   - Bird's webhook. Bird posts its sms.* events to one URL, signed the
//     Standard Webhooks way with the subscription's secret (whsec_…).
//
// A Report keeps the recipient's country, never the number, and nothing
// here logs. This package does not decide HTTP statuses: ErrForged and
// ErrMalformed say what was wrong.
package report

import (
	"context"
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/nyaruka/phonenumbers"
)

// Status is what a report says became of an SMS, as the metrics name it.
type Status string

// Statuses.
const (
	Delivered Status = "delivered" // the phone has it
	Failed    Status = "failed"    // it will not reach the phone: refused, undeliverable or expired
	Accepted  Status = "accepted"  // a network (the SMSC, the carrier) took it; the phone's word is to come
	Pending   Status = "pending"   // the gateway's SMSC holds it for a later try
)

// Report is one delivery report.
type Report struct {
	Provider  string // "kannel" or "bird"
	Country   string // ISO 3166 alpha-2 region of the recipient; "" when unknown
	Status    Status // "" for an event that is not about delivery: acknowledged, not counted
	Reference string // the message's Reference, when the report carries it
}

// What a report can be refused for. Errors wrap one of them.
var (
	// ErrForged is a report without a valid signature: made up, altered,
	// or signed with a secret this gateway does not hold.
	ErrForged = errors.New("delivery report not signed by a known key")
	// ErrMalformed is a signed report the gateway cannot read.
	ErrMalformed = errors.New("delivery report malformed")
)

// Country returns the ISO 3166 alpha-2 region of an E.164 number, or ""
// when it names none.
func Country(phone string) string {
	num, err := phonenumbers.Parse(phone, "")
	if err != nil {
		return ""
	}
	region := phonenumbers.GetRegionCodeForNumber(num)
	if !isRegion(region) {
		return ""
	}
	return region
}

// isRegion accepts two upper-case letters, as region codes are; ZZ is
// phonenumbers' unknown region.
func isRegion(s string) bool {
	return len(s) == 2 && s != "ZZ" && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// contextKey is the key of the URLs in a caddy.Context.
type contextKey struct{}

// With returns a copy of ctx that carries u. The gateway loads its sender
// module through it; a sender that asks its provider for delivery reports
// finds u with From in its Provision.
func With(ctx caddy.Context, u *URLs) caddy.Context {
	ctx.Context = context.WithValue(ctx.Context, contextKey{}, u)
	return ctx
}

// From returns the URLs that With put in ctx, or nil.
func From(ctx context.Context) *URLs {
	u, _ := ctx.Value(contextKey{}).(*URLs)
	return u
}
