// Package messagebird is the SMS sender
// http.handlers.sms_recovery.senders.messagebird: each message goes out as
// one SMS through the MessageBird REST API (POST /messages), as plain GSM-7
// text with the message's Validity and Reference.
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
	mbapi "github.com/messagebird/go-rest-api/v9"
	mbsms "github.com/messagebird/go-rest-api/v9/sms"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

func init() {
	caddy.RegisterModule(MessageBird{})
}

// MessageBird sends through MessageBird's SMS API. JSON: {"provider":
// "messagebird", "access_key": "{env.MESSAGEBIRD_ACCESS_KEY}",
// "originator": "ExampleMail"}.
type MessageBird struct {
	// AccessKey is the live or test API key of the MessageBird account,
	// usually {env.MESSAGEBIRD_ACCESS_KEY} so that it is not written into
	// the config. Required.
	AccessKey string `json:"access_key,omitempty"`

	// Originator is the sender shown on the phone: a number with its
	// country code, or up to 11 letters, digits and spaces. Placeholders
	// are expanded. Required.
	Originator string `json:"originator,omitempty"`

	// Endpoint is the base URL of the API. Placeholders are expanded.
	// Default: https://rest.messagebird.com.
	Endpoint string `json:"endpoint,omitempty"`

	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// transport keeps as many idle connections to the API as a queue has
	// workers, where http.DefaultTransport keeps two: at a sustained rate,
	// every request beyond those would open a connection of its own, TLS
	// handshake included.
	transport *http.Transport
}

const provider = "messagebird"

// CaddyModule returns the Caddy module information.
func (MessageBird) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.Namespace + "." + provider,
		New: func() caddy.Module { return new(MessageBird) },
	}
}

// Provision expands the placeholders, fills the defaults and builds the
// HTTP transport.
func (mb *MessageBird) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"access_key", &mb.AccessKey}, {"originator", &mb.Originator}, {"endpoint", &mb.Endpoint}} {
		if err := placeholder.Expand(nil, "sms messagebird: "+f.name, f.s); err != nil {
			return err
		}
	}
	if mb.Endpoint == "" {
		mb.Endpoint = mbapi.Endpoint
	}
	mb.Endpoint = strings.TrimSuffix(mb.Endpoint, "/")
	if mb.Timeout == 0 {
		mb.Timeout = caddy.Duration(10 * time.Second)
	}
	mb.transport = http.DefaultTransport.(*http.Transport).Clone()
	mb.transport.MaxIdleConns = max(mb.transport.MaxIdleConns, sms.DefaultWorkers)
	mb.transport.MaxIdleConnsPerHost = sms.DefaultWorkers
	return nil
}

// Validate checks the settings. Errors name the setting at fault as the
// Caddyfile spells it.
func (mb *MessageBird) Validate() error {
	if mb.AccessKey == "" {
		return errors.New("sms messagebird: access_key is required")
	}
	if err := checkOriginator(mb.Originator); err != nil {
		return fmt.Errorf("sms messagebird: originator: %w", err)
	}
	if err := checkEndpoint(mb.Endpoint); err != nil {
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

func checkEndpoint(e string) error {
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
	return nil
}

func isDigits(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// Deliver sends m and waits for MessageBird's answer, for at most Timeout.
// Failures are *sms.Error values: permanent for 4xx answers (with
// MessageBird's error code, e.g. 2 for a wrong access key) and for messages
// that cannot be sent; retryable for 5xx and 429 answers, network errors
// and timeouts.
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
	rt := &callTransport{ctx: ctx, base: mb.transport}
	// DefaultClient.Request takes no context, so the call's context reaches
	// the request through a transport made for this call. DebugLog stays
	// nil: the client's debug log would print the body, and with it the code.
	client := endpointClient{
		endpoint: mb.Endpoint,
		client: &mbapi.DefaultClient{
			AccessKey: mb.AccessKey,
			HTTPClient: &http.Client{
				Transport: rt,
				CheckRedirect: func(*http.Request, []*http.Request) error {
					return http.ErrUseLastResponse
				},
			},
		},
	}
	params := &mbsms.Params{
		DataCoding: "plain",
		Reference:  m.Reference,
		Validity:   validitySeconds(m.Validity),
	}
	_, err := mbsms.Create(client, mb.Originator, []string{msisdn}, m.Body, params)
	if err == nil {
		return nil
	}
	return classify(err, rt.status)
}

// validitySeconds rounds v up to whole seconds; 0 means no limit and is left
// out of the request.
func validitySeconds(v time.Duration) int {
	if v <= 0 {
		return 0
	}
	return int((v + time.Second - 1) / time.Second)
}

// classify turns a failed call into an *sms.Error. Library errors are
// wrapped only when they come from the network: those it builds from an
// answer it could not decode quote the answer, which may repeat the body.
func classify(err error, status int) *sms.Error {
	e := &sms.Error{Provider: provider, Status: status}
	var api mbapi.ErrorResponse
	if errors.As(err, &api) && len(api.Errors) > 0 {
		e.Code, e.Parameter = api.Errors[0].Code, api.Errors[0].Parameter
	}
	switch {
	case status == 0:
		e.Err = err // no answer: network error or timeout
	case status >= 500, status == http.StatusTooManyRequests:
		// The provider failed or asks to slow down: worth another try.
	case status >= 200 && status < 300:
		// Accepted, but the answer could not be read. Sending again could
		// text the person twice, so it is not retried.
		e.Permanent = true
		e.Err = errors.New("unreadable answer")
	default:
		e.Permanent = true
	}
	return e
}

// endpointClient sends the library's requests to the configured endpoint:
// the library prefixes relative paths with its constant Endpoint, but
// passes absolute URLs through untouched.
type endpointClient struct {
	endpoint string
	client   *mbapi.DefaultClient
}

func (c endpointClient) Request(v any, method, path string, data any) error {
	return c.client.Request(v, method, c.endpoint+"/"+path, data)
}

// callTransport carries one call's context to its request and records the
// HTTP status of the answer, which the library does not return.
type callTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	status int
}

func (t *callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r.WithContext(t.ctx))
	if resp != nil {
		t.status = resp.StatusCode
	}
	return resp, err
}

// UnmarshalCaddyfile reads
//
//	sms messagebird {
//	    access_key <key>               # usually {env.MESSAGEBIRD_ACCESS_KEY}
//	    originator <name or number>
//	    endpoint   <url>               # default https://rest.messagebird.com
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
	_ mbapi.Client       = endpointClient{}
)
