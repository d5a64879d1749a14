// Package directorymodule is a minimal third-party directory for
// caddy-sms-recovery, written the way any other one would be: a Caddy
// guest module of the namespace http.handlers.sms_recovery.directories
// that implements recovery.Directory and reads its own Caddyfile segment.
// Built in with
//
//	xcaddy build --with github.com/caddy-sms-recovery/caddy-sms-recovery \
//	    --with github.com/caddy-sms-recovery/caddy-sms-recovery/examples/directorymodule
//
// it is configured with the same directive as the built-in sources:
//
//	sms_recovery {
//	    directory static {
//	        alice@example.com +31612345678
//	        bob@example.com   +4915123456789 de
//	    }
//	    ...
//	}
//
// and in JSON as {"source": "static", "phones": {"alice@example.com":
// {"phone": "+31612345678"}}}. It keeps the phones in the config itself,
// which suits a handful of test accounts; a real source would look them up
// somewhere in Lookup.
package directorymodule

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(Static{})
}

// Static is the directory http.handlers.sms_recovery.directories.static.
type Static struct {
	// Phones maps accounts to their phone number and, optionally, language.
	Phones map[string]Phone `json:"phones,omitempty"`

	entries map[string]recovery.Entry // by normalised account
}

// Phone is one account's entry.
type Phone struct {
	Phone string `json:"phone"`
	Lang  string `json:"lang,omitempty"`
}

// CaddyModule returns the Caddy module information. The ID's last part is
// the name the Caddyfile and the JSON "source" use.
func (Static) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sms_recovery.directories.static",
		New: func() caddy.Module { return new(Static) },
	}
}

// Provision normalises the accounts by the rule the flow applies to what a
// person types, so that a lookup finds them however they were written.
func (s *Static) Provision(caddy.Context) error {
	s.entries = make(map[string]recovery.Entry, len(s.Phones))
	for account, p := range s.Phones {
		key, err := recovery.NormalizeAccount(account)
		if err != nil {
			return fmt.Errorf("directory static: account %q: %w", account, err)
		}
		s.entries[key] = recovery.Entry{Phone: p.Phone, Lang: p.Lang}
	}
	return nil
}

// Lookup implements recovery.Directory: an account it does not hold is
// recovery.ErrUnknownAccount. A source that asks a server returns an error
// matching recovery.ErrUnavailable when the server cannot answer, so that
// the flow fails closed (503) instead of calling the account unknown.
func (s *Static) Lookup(_ context.Context, account string) (recovery.Entry, error) {
	e, ok := s.entries[account]
	if !ok {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return e, nil
}

// UnmarshalCaddyfile reads the rest of the directory line, from its name:
//
//	directory static {
//	    <account> <phone> [<lang>]
//	}
func (s *Static) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name, "static"
	if d.NextArg() {
		return d.ArgErr()
	}
	s.Phones = map[string]Phone{}
	for d.NextBlock(0) {
		account := d.Val()
		args := d.RemainingArgs()
		if len(args) < 1 || len(args) > 2 {
			return d.Errf("directory static: want '<account> <phone> [<lang>]' for '%s'", account)
		}
		p := Phone{Phone: args[0]}
		if len(args) == 2 {
			p.Lang = args[1]
		}
		s.Phones[account] = p
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Static)(nil)
	_ caddyfile.Unmarshaler = (*Static)(nil)
	_ recovery.Directory    = (*Static)(nil)
)
