// Package messagebird is the SMS sender
// http.handlers.sms_recovery.senders.messagebird: each message goes out as
// one SMS through the API that its access key belongs to, told by the
// key's form as Bird's Go SDK tells it:
//
//   - a MessageBird access key goes to the legacy REST API (POST
//     /messages, Authorization: AccessKey) through go-rest-api, as plain
//     GSM-7 text with the message's Validity and Reference;
//   - a Bird platform key bk_<region>_… goes to the platform API of its
//     region (POST /v1/sms/messages, Authorization: Bearer), in category
//     authentication, with the message's idempotency key
//     (sms.IdempotencyKey) and its Reference in the metadata.
//
// It must never log, or put in an error, a message body (it holds a
// one-time code), a full phone number or the access key.
package messagebird

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

func init() {
	caddy.RegisterModule(MessageBird{})
}

// MessageBird sends through Bird's SMS APIs, legacy or platform as its key
// says. JSON: {"provider": "messagebird", "access_key":
// "{env.MESSAGEBIRD_ACCESS_KEY}", "originator": "ExampleMail"}.
type MessageBird struct {
	// AccessKey is the key of the Bird account, usually
	// {env.MESSAGEBIRD_ACCESS_KEY} so that it is not written into the
	// config: a MessageBird access key (live or test) for the legacy REST
	// API, or a Bird platform key bk_<region>_… for the platform API of
	// its region. Its form picks the API. Required.
	AccessKey string `json:"access_key,omitempty"`

	// Originator is the sender shown on the phone: a number with its
	// country code, or up to 11 letters, digits and spaces. Placeholders
	// are expanded. Required.
	Originator string `json:"originator,omitempty"`

	// Endpoint is the base URL of the API, for tests or a proxy; the API's
	// paths are appended to it. Placeholders are expanded. One of Bird's
	// own hosts that does not serve the key is refused. Default:
	// https://rest.messagebird.com for a MessageBird access key,
	// https://<region>.platform.bird.com for a bk_<region>_ key.
	Endpoint string `json:"endpoint,omitempty"`

	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// transport keeps as many idle connections to the API as a queue has
	// workers, where http.DefaultTransport keeps two: at a sustained rate,
	// every request beyond those would open a connection of its own, TLS
	// handshake included.
	transport *http.Transport
	client    *http.Client // the platform API's, over transport
	region    string       // of a platform key; "" for a MessageBird access key
}

const provider = "messagebird"

// CaddyModule returns the Caddy module information.
func (MessageBird) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.Namespace + "." + provider,
		New: func() caddy.Module { return new(MessageBird) },
	}
}

// Provision expands the placeholders, tells the key's API, fills the
// defaults and builds the HTTP client.
func (mb *MessageBird) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"access_key", &mb.AccessKey}, {"originator", &mb.Originator}, {"endpoint", &mb.Endpoint}} {
		if err := placeholder.Expand(nil, "sms messagebird: "+f.name, f.s); err != nil {
			return err
		}
	}
	mb.region = platformRegion(mb.AccessKey)
	if mb.Endpoint == "" {
		mb.Endpoint = defaultEndpoint(mb.region)
	}
	mb.Endpoint = strings.TrimSuffix(mb.Endpoint, "/")
	if mb.Timeout == 0 {
		mb.Timeout = caddy.Duration(10 * time.Second)
	}
	mb.transport = http.DefaultTransport.(*http.Transport).Clone()
	mb.transport.MaxIdleConns = max(mb.transport.MaxIdleConns, sms.DefaultWorkers)
	mb.transport.MaxIdleConnsPerHost = sms.DefaultWorkers
	mb.client = &http.Client{Transport: mb.transport, CheckRedirect: noRedirects}
	return nil
}

// Validate checks the settings. Errors name the setting at fault as the
// Caddyfile spells it.
func (mb *MessageBird) Validate() error {
	if mb.AccessKey == "" {
		return errors.New("sms messagebird: access_key is required")
	}
	if err := checkKey(mb.AccessKey, mb.region); err != nil {
		return fmt.Errorf("sms messagebird: access_key: %w", err)
	}
	if err := checkOriginator(mb.Originator); err != nil {
		return fmt.Errorf("sms messagebird: originator: %w", err)
	}
	if err := checkEndpoint(mb.Endpoint, mb.region); err != nil {
		return fmt.Errorf("sms messagebird: endpoint: %w", err)
	}
	if mb.Timeout < 0 {
		return fmt.Errorf("sms messagebird: timeout %s is negative", time.Duration(mb.Timeout))
	}
	return nil
}

// Cleanup closes the idle connections to the API.
func (mb *MessageBird) Cleanup() error {
	if mb.transport != nil {
		mb.transport.CloseIdleConnections()
	}
	return nil
}

func checkOriginator(o string) error {
	if o == "" {
		return errors.New("required")
	}
	if digits, ok := strings.CutPrefix(o, "+"); ok || isDigits(o) {
		if !isDigits(digits) || len(digits) > 16 {
			return fmt.Errorf("%q is neither a phone number nor up to 11 letters and digits", o)
		}
		return nil
	}
	if len(o) > 11 {
		return fmt.Errorf("%q is longer than 11 characters", o)
	}
	for _, r := range o {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ') {
			return fmt.Errorf("%q may hold only letters, digits and spaces", o)
		}
	}
	return nil
}

// checkEndpoint checks that e is a base URL, and not one of Bird's hosts
// that refuses keys of region (see checkHost).
func checkEndpoint(e, region string) error {
	// The messages quote the URL without a password written into it.
	u, err := url.Parse(e)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", errors.Unwrap(err))
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not have credentials, a query or a fragment", u.Redacted())
	}
	return checkHost(e, strings.ToLower(u.Hostname()), region)
}

func isDigits(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// Deliver sends m through the API of the key and waits for its answer, for
// at most Timeout. Failures are *sms.Error values: permanent for 4xx
// answers (with the provider's error code and words, and for a refused key
// what to change) and for messages that cannot be sent; retryable for 5xx
// and 429 answers (with their Retry-After), network errors and timeouts.
func (mb *MessageBird) Deliver(ctx context.Context, m recovery.Message) error {
	msisdn := strings.TrimPrefix(m.To, "+")
	switch {
	case !isDigits(msisdn):
		return &sms.Error{Provider: provider, Permanent: true, Err: errors.New("recipient is not an E.164 number")}
	case m.Body == "":
		return &sms.Error{Provider: provider, Permanent: true, Err: errors.New("empty body")}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(mb.Timeout))
	defer cancel()
	if mb.region != "" {
		return mb.deliverPlatform(ctx, m, msisdn)
	}
	return mb.deliverLegacy(ctx, m, msisdn)
}

// noRedirects makes a client hand back a redirect as the answer: the key
// must not follow it elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// UnmarshalCaddyfile reads
//
//	sms messagebird {
//	    access_key <key>               # usually {env.MESSAGEBIRD_ACCESS_KEY}: a MessageBird
//	                                   # access key, or a Bird platform key bk_<region>_…
//	    originator <name or number>
//	    endpoint   <url>               # default https://rest.messagebird.com, or
//	                                   # https://<region>.platform.bird.com for a bk_ key
//	    timeout    <duration>          # default 10s
//	}
func (mb *MessageBird) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("sms messagebird: takes no argument, only a block (got '%s')", d.Val())
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		name := d.Val()
		if err := seen.Once(d, "sms messagebird"); err != nil {
			return err
		}
		var err error
		switch name {
		case "access_key":
			err = cfparse.Secret(d, "sms messagebird: access_key", &mb.AccessKey)
		case "originator":
			err = cfparse.String(d, &mb.Originator)
		case "endpoint":
			err = cfparse.String(d, &mb.Endpoint)
		case "timeout":
			err = cfparse.Duration(d, &mb.Timeout)
		default:
			return cfparse.Unknown(d, "sms messagebird")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*MessageBird)(nil)
	_ caddy.Validator    = (*MessageBird)(nil)
	_ caddy.CleanerUpper = (*MessageBird)(nil)
	_ cf.Unmarshaler     = (*MessageBird)(nil)
	_ sms.Deliverer      = (*MessageBird)(nil)
)
