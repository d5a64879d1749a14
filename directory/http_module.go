package directory

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(HTTPModule{})
}

// HTTPModule is the directory http.handlers.sms_recovery.directories.http:
// a web service asked GET <url>?account=<account>, signed like the
// forwarded reset, that answers 200 {"phone": "+E164"} or 404 (see HTTP).
// JSON: {"source": "http", "url": "https://directory.internal/phones"}.
//
// It signs with the RequestSigner its host put in the caddy.Context
// (WithRequestSigner), and refuses to load without one: an unsigned lookup
// would let anyone ask the service for phone numbers.
type HTTPModule struct {
	// URL is the service's endpoint, http or https. Placeholders are
	// expanded. Required.
	URL string `json:"url,omitempty"`

	// Timeout bounds one lookup. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	dir *HTTP
}

// CaddyModule returns the Caddy module information.
func (HTTPModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".http",
		New: func() caddy.Module { return new(HTTPModule) },
	}
}

// Provision checks the URL and takes the host's signer from ctx.
func (m *HTTPModule) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "directory http", &m.URL); err != nil {
		return err
	}
	if m.URL == "" {
		return errors.New("directory http: a url is required")
	}
	sign := RequestSignerFrom(ctx)
	if sign == nil {
		return errors.New("directory http: loaded without a request signer (only the sms_recovery handler can load it)")
	}
	d, err := NewHTTP(HTTPConfig{URL: m.URL, Timeout: time.Duration(m.Timeout), Sign: sign})
	if err != nil {
		return err // it names the directive
	}
	m.dir = d
	return nil
}

// Lookup implements recovery.Directory.
func (m *HTTPModule) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	return m.dir.Lookup(ctx, account)
}

// UnmarshalCaddyfile reads
//
//	directory http <url> {
//	    timeout <duration>   # default 3s
//	}
func (m *HTTPModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("directory http: a url is required (directory http <url>)")
	}
	m.URL = d.Val()
	if d.NextArg() {
		return d.Errf("directory http: one url, not '%s' too", d.Val())
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, "directory http"); err != nil {
			return err
		}
		switch d.Val() {
		case "timeout":
			if err := cfparse.Duration(d, &m.Timeout); err != nil {
				return err
			}
		default:
			return d.Errf("directory http: unrecognized subdirective '%s'", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*HTTPModule)(nil)
	_ cf.Unmarshaler     = (*HTTPModule)(nil)
	_ recovery.Directory = (*HTTPModule)(nil)
)
