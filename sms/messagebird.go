package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	messagebird "github.com/messagebird/go-rest-api/v9"
	mbsms "github.com/messagebird/go-rest-api/v9/sms"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// MessageBirdConfig configures a MessageBird Deliverer.
type MessageBirdConfig struct {
	// AccessKey is the live or test access key of the MessageBird account.
	// Required.
	AccessKey string
	// Originator is the sender shown on the phone: a number with its country
	// code, or up to 11 letters, digits and spaces. Required.
	Originator string
	// Endpoint is the base URL of the REST API. Default:
	// https://rest.messagebird.com.
	Endpoint string
	// Timeout bounds each request. Default: 10s.
	Timeout time.Duration
	// Transport sends the requests. Default: a clone of
	// http.DefaultTransport that keeps as many idle connections to the API
	// as a Queue has workers (DefaultWorkers), where http.DefaultTransport
	// keeps two: at a sustained rate, every request beyond those would open
	// a connection of its own, TLS handshake included.
	Transport http.RoundTripper
}

// MessageBird is a Deliverer that sends each message as one SMS through the
// MessageBird REST API (POST /messages) as plain GSM-7 text, with the
// message's Validity and Reference.
type MessageBird struct {
	accessKey  string
	originator string
	endpoint   string
	timeout    time.Duration
	transport  http.RoundTripper
}

const messageBirdProvider = "messagebird"

// NewMessageBird checks cfg, fills its defaults and returns the Deliverer.
// Errors name the setting at fault as the Caddyfile spells it.
func NewMessageBird(cfg MessageBirdConfig) (*MessageBird, error) {
	if cfg.AccessKey == "" {
		return nil, errors.New("messagebird: access_key is required")
	}
	if err := checkOriginator(cfg.Originator); err != nil {
		return nil, fmt.Errorf("messagebird: originator: %w", err)
	}
	endpoint, err := checkEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("messagebird: endpoint: %w", err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("messagebird: timeout %s is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = max(t.MaxIdleConns, DefaultWorkers)
		t.MaxIdleConnsPerHost = DefaultWorkers
		cfg.Transport = t
	}
	return &MessageBird{
		accessKey:  cfg.AccessKey,
		originator: cfg.Originator,
		endpoint:   endpoint,
		timeout:    cfg.Timeout,
		transport:  cfg.Transport,
	}, nil
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

func checkEndpoint(e string) (string, error) {
	if e == "" {
		return messagebird.Endpoint, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("%q is not an http or https URL", e)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must not have credentials, a query or a fragment", e)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Deliver sends m and waits for MessageBird's answer, for at most the
// configured timeout. Failures are *Error values: permanent for 4xx answers
// (with MessageBird's error code, e.g. 2 for a wrong access key) and for
// messages that cannot be sent; retryable for 5xx and 429 answers, network
// errors and timeouts.
func (mb *MessageBird) Deliver(ctx context.Context, m recovery.Message) error {
	msisdn := strings.TrimPrefix(m.To, "+")
	switch {
	case !isDigits(msisdn):
		return &Error{Provider: messageBirdProvider, Permanent: true, Err: errors.New("recipient is not an E.164 number")}
	case m.Body == "":
		return &Error{Provider: messageBirdProvider, Permanent: true, Err: errors.New("empty body")}
	}

	ctx, cancel := context.WithTimeout(ctx, mb.timeout)
	defer cancel()
	rt := &callTransport{ctx: ctx, base: mb.transport}
	// DefaultClient.Request takes no context, so the call's context reaches
	// the request through a transport made for this call. DebugLog stays
	// nil: the client's debug log would print the body, and with it the code.
	client := endpointClient{
		endpoint: mb.endpoint,
		client: &messagebird.DefaultClient{
			AccessKey: mb.accessKey,
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
	_, err := mbsms.Create(client, mb.originator, []string{msisdn}, m.Body, params)
	if err == nil {
		return nil
	}
	return classify(err, rt.status)
}

// CloseIdleConnections closes the idle connections of the transport; call it
// when the Deliverer is no longer used.
func (mb *MessageBird) CloseIdleConnections() {
	if c, ok := mb.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// validitySeconds rounds v up to whole seconds; 0 means no limit and is left
// out of the request.
func validitySeconds(v time.Duration) int {
	if v <= 0 {
		return 0
	}
	return int((v + time.Second - 1) / time.Second)
}

// classify turns a failed call into an *Error. Library errors are wrapped
// only when they come from the network: those it builds from an answer it
// could not decode quote the answer, which may repeat the body.
func classify(err error, status int) *Error {
	e := &Error{Provider: messageBirdProvider, Status: status}
	var api messagebird.ErrorResponse
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
	client   *messagebird.DefaultClient
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

// Interface guards
var (
	_ Deliverer          = (*MessageBird)(nil)
	_ messagebird.Client = endpointClient{}
)
