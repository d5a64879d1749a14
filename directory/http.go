package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// DefaultHTTPTimeout bounds one directory request: the flow is waiting, and
// a slow directory must not hold requests open.
const DefaultHTTPTimeout = 3 * time.Second

// maxResponseBytes bounds the body read from the directory; an answer is a
// phone number and a language.
const maxResponseBytes = 16 << 10

// HTTPConfig configures an HTTP directory.
type HTTPConfig struct {
	// URL is the directory's endpoint. A lookup is a GET of it with the
	// query parameter account=<account> added to any it already has.
	URL string
	// Timeout bounds each request, from connecting to reading the body.
	// Default: 3s.
	Timeout time.Duration
	// Sign, if set, signs each request before it is sent (RFC 9421, as the
	// forwarded reset is). It is called with the method, URL and headers
	// final, X-Recovery-Account included.
	Sign func(*http.Request) error
}

// HTTP is a recovery.Directory that asks a web service. It is safe for
// concurrent use.
//
// The service answers 200 with {"phone": "+E164", "lang": "nl"} ("lang" is
// optional) for an account with a phone number, and 404 for any other. Any
// other answer, a timeout or a body that does not parse is an error that
// matches recovery.ErrUnavailable, so that the flow fails closed.
type HTTP struct {
	url     *url.URL
	timeout time.Duration
	sign    func(*http.Request) error
	client  *http.Client
}

// NewHTTP checks the configuration and returns the directory.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("directory http: invalid url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("directory http: url %q is not an absolute http or https url", u.Redacted())
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("directory http: url %q has a fragment", u.Redacted())
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("directory http: negative timeout %s", cfg.Timeout)
	}
	d := &HTTP{url: u, timeout: cfg.Timeout, sign: cfg.Sign}
	if d.timeout == 0 {
		d.timeout = DefaultHTTPTimeout
	}
	d.client = &http.Client{
		// A redirect would carry the signed request elsewhere; it counts
		// as an unexpected answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d, nil
}

// Lookup asks the directory for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount on a 404 and, without asking, for a name the
// rule refuses; and an error matching recovery.ErrUnavailable when the
// directory cannot tell.
func (d *HTTP) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := d.request(ctx, account)
	if err != nil {
		return recovery.Entry{}, unavailable(err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, whose query may hold a key
		}
		return recovery.Entry{}, unavailable(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return recovery.Entry{}, unavailable(fmt.Errorf("reading answer: %w", err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return recovery.Entry{}, recovery.ErrUnknownAccount
	default:
		return recovery.Entry{}, unavailable(fmt.Errorf("unexpected status %d", resp.StatusCode))
	}
	if len(body) > maxResponseBytes {
		return recovery.Entry{}, unavailable(fmt.Errorf("answer longer than %d bytes", maxResponseBytes))
	}
	var e struct {
		Phone string `json:"phone"`
		Lang  string `json:"lang"`
	}
	// The decoding error is left out: it can quote the phone number.
	if json.Unmarshal(body, &e) != nil {
		return recovery.Entry{}, unavailable(errors.New(`answer is not a JSON object {"phone": "+E164", "lang": ...}`))
	}
	// "No phone" is a 404; a 200 without one is a directory that is broken,
	// or speaks another format, and must not look like an unknown account.
	if e.Phone = strings.TrimSpace(e.Phone); e.Phone == "" {
		return recovery.Entry{}, unavailable(errors.New(`answer has no "phone"`))
	}
	return recovery.Entry{Phone: e.Phone, Lang: strings.TrimSpace(e.Lang)}, nil
}

// request builds the signed GET for account.
func (d *HTTP) request(ctx context.Context, account string) (*http.Request, error) {
	u := *d.url
	q := u.Query()
	q.Set("account", account)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	// "@path" does not cover the query: the header is what binds a
	// signature to the account, as on the forwarded reset.
	req.Header.Set("X-Recovery-Account", account)
	if d.sign != nil {
		if err := d.sign(req); err != nil {
			return nil, fmt.Errorf("signing request: %w", err)
		}
	}
	return req, nil
}

func unavailable(err error) error {
	return fmt.Errorf("directory http: %w: %w", recovery.ErrUnavailable, err)
}

// Interface guards
var _ recovery.Directory = (*HTTP)(nil)
