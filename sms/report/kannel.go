package report

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Keys signs and checks what a report URL vouches for, as a
// recovery.Keyring does.
type Keys interface {
	ReportTag(payload string) string
	MatchReportTag(payload, tag string) bool
}

// URLs makes the report URLs of one gateway and checks the reports that
// come back on them.
type URLs struct {
	base string
	keys Keys
}

// NewURLs returns the URLs below base, <public_url><path_prefix>/sms-report,
// signed with keys.
func NewURLs(base string, keys Keys) *URLs {
	return &URLs{base: strings.TrimSuffix(base, "/"), keys: keys}
}

// ID names u by its base and its newest key, without showing the key:
// senders provisioned with different URLs must not share a queue.
func (u *URLs) ID() string {
	return u.base + " " + u.keys.ReportTag("report urls id")
}

// The providers whose reports are read, as the URL's last segment and the
// metrics' provider label name them.
const (
	Kannel = "kannel"
	Bird   = "bird"
)

// KannelURL returns the dlr-url to hand Kannel with m:
// <base>/kannel?c=<country>&r=<reference>&t=<tag>&status=%d. smsbox
// replaces %d with the DLR type when it calls it, and reads every other %
// as one of its escapes too: the country, the reference (hex) and the tag
// (base64url) need no escaping, so there is none.
func (u *URLs) KannelURL(m recovery.Message) string {
	country := Country(m.To)
	q := url.Values{"c": {country}, "r": {m.Reference}, "t": {u.keys.ReportTag(kannelPayload(country, m.Reference))}}
	return u.base + "/" + Kannel + "?" + q.Encode() + "&status=%d"
}

// kannelPayload is what the tag of a Kannel report URL vouches for.
func kannelPayload(country, ref string) string {
	return Kannel + "\x00" + country + "\x00" + ref
}

// kannelStatus maps Kannel's DLR types (its dlr-mask bits) onto statuses.
var kannelStatus = map[string]Status{
	"1":  Delivered, // delivered to the phone
	"2":  Failed,    // not delivered to the phone
	"4":  Pending,   // buffered by the SMSC
	"8":  Accepted,  // the SMSC took it
	"16": Failed,    // the SMSC refused it
}

// Kannel reads the query of smsbox's call to a KannelURL. A query whose
// tag does not vouch for its country and reference is ErrForged; a DLR
// type that is not one of 1, 2, 4, 8 and 16 is ErrMalformed.
func (u *URLs) Kannel(q url.Values) (Report, error) {
	country, ref, tag := q.Get("c"), q.Get("r"), q.Get("t")
	if tag == "" {
		return Report{}, fmt.Errorf("%w: no tag", ErrForged)
	}
	if !u.keys.MatchReportTag(kannelPayload(country, ref), tag) {
		return Report{}, fmt.Errorf("%w: the tag does not match", ErrForged)
	}
	status, ok := kannelStatus[q.Get("status")]
	if !ok {
		return Report{}, fmt.Errorf("%w: status is not a DLR type Kannel sends (1, 2, 4, 8 or 16)", ErrMalformed)
	}
	return Report{Provider: Kannel, Country: country, Status: status, Reference: ref}, nil
}
