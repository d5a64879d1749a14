// Package httpdirectory is the directory
// http.handlers.sms_recovery.directories.http: a web service asked for each
// account with a signed request.
package httpdirectory

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

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(HTTP{})
}

// defaultTimeout bounds one lookup: the flow is waiting, and a slow
// directory must not hold requests open.
const defaultTimeout = 3 * time.Second

// maxResponseBytes bounds the body read from the directory; an answer is a
// phone number and a language.
const maxResponseBytes = 16 << 10

// HTTP is the directory http.handlers.sms_recovery.directories.http: a web
// service asked GET <url>?account=<account>, signed like the forwarded
// reset. JSON: {"source": "http", "url": "https://directory.internal/phones"}.
// It is safe for concurrent use.
//
// The service answers 200 with {"phone": "+E164", "lang": "nl", "email":
// "owner@example.net"} ("lang" and "email", an alternate address for reset
// notices, are optional) for an account with a phone number, and 404 for any other. Any
// other answer, a timeout or a body that does not parse is an error that
// matches recovery.ErrUnavailable, so that the flow fails closed.
//
// It signs with the RequestSigner its host put in the caddy.Context
// (directory.WithRequestSigner), and refuses to load without one: an
// unsigned lookup would let anyone ask the service for phone numbers.
type HTTP struct {
	// URL is the service's endpoint, http or https. A lookup is a GET of it
	// with the query parameter account=<account> added to any it already
	// has. Placeholders are expanded. Required.
	URL string `json:"url,omitempty"`

	// Timeout bounds one lookup, from connecting to reading the body.
	// Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	url    *url.URL
	sign   directory.RequestSigner
	client *http.Client
}

// CaddyModule returns the Caddy module information.
func (HTTP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  directory.Namespace + ".http",
		New: func() caddy.Module { return new(HTTP) },
	}
}

// Provision expands the URL, fills the default timeout and takes the host's
// signer from ctx.
func (h *HTTP) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "directory http", &h.URL); err != nil {
		return err
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(defaultTimeout)
	}
	h.url, _ = url.Parse(h.URL) // Validate refuses one that does not parse
	h.sign = directory.RequestSignerFrom(ctx)
	h.client = &http.Client{
		// A redirect would carry the signed request elsewhere; it counts
		// as an unexpected answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// Validate checks the URL, the timeout and that there is a signer.
func (h *HTTP) Validate() error {
	if h.URL == "" {
		return errors.New("directory http: a url is required")
	}
	if h.sign == nil {
		return errors.New("directory http: loaded without a request signer (only the sms_recovery handler can load it)")
	}
	u, err := url.Parse(h.URL)
	switch {
	case err != nil:
		return fmt.Errorf("directory http: invalid url: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("directory http: url %q is not an absolute http or https url", u.Redacted())
	case u.Fragment != "":
		return fmt.Errorf("directory http: url %q has a fragment", u.Redacted())
	case h.Timeout < 0:
		return fmt.Errorf("directory http: negative timeout %s", time.Duration(h.Timeout))
	}
	return nil
}

// Lookup asks the directory for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount on a 404 and, without asking, for a name the
// rule refuses; and an error matching recovery.ErrUnavailable when the
// directory cannot tell.
func (h *HTTP) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(h.Timeout))
	defer cancel()
	req, err := h.request(ctx, account)
	if err != nil {
		return recovery.Entry{}, unavailable(err)
	}
	resp, err := h.client.Do(req)
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
		Email string `json:"email"`
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
	return recovery.Entry{Phone: e.Phone, Lang: strings.TrimSpace(e.Lang), Email: strings.TrimSpace(e.Email)}, nil
}

// request builds the signed GET for account.
func (h *HTTP) request(ctx context.Context, account string) (*http.Request, error) {
	u := *h.url
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
	if h.sign != nil {
		if err := h.sign(req); err != nil {
			return nil, fmt.Errorf("signing request: %w", err)
		}
	}
	return req, nil
}

func unavailable(err error) error {
	return directory.Unavailable("http", err)
}

// UnmarshalCaddyfile reads
//
//	directory http <url> {
//	    timeout <duration>   # default 3s
//	}
func (h *HTTP) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("directory http: a url is required (directory http <url>)")
	}
	h.URL = d.Val()
	if d.NextArg() {
		return d.Errf("directory http: one url, not '%s' too", d.Val())
	}
	return cfparse.Block(d, "directory http", map[string]func() error{
		"timeout": func() error { return cfparse.Duration(d, &h.Timeout) },
	})
}

// Interface guards
var (
	_ caddy.Provisioner  = (*HTTP)(nil)
	_ caddy.Validator    = (*HTTP)(nil)
	_ cf.Unmarshaler     = (*HTTP)(nil)
	_ recovery.Directory = (*HTTP)(nil)
)
