package directory

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(LDAPModule{})
}

// LDAPModule is the directory http.handlers.sms_recovery.directories.ldap:
// a subtree search of an LDAP server, such as the mobile attribute of
// inetOrgPerson entries (see LDAP). JSON: {"source": "ldap", "url":
// "ldaps://ldap.example.com", "base_dn": ..., "filter": "(mail={account})"}.
// Cleanup closes its pool of connections.
type LDAPModule struct {
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the first
	// byte, checked against the system's roots). Over ldap:// without
	// start_tls the bind password crosses the network in clear: use either
	// only on a trusted network. Placeholders such as {env.LDAP_URL} are
	// expanded. Required.
	URL string `json:"url,omitempty"`

	// StartTLS upgrades an ldap:// connection to TLS (the StartTLS
	// operation) before binding; a server that refuses it is an outage,
	// never a reason to go on in clear. Not with ldaps://. Default: off.
	StartTLS bool `json:"start_tls,omitempty"`

	// BindDN is the DN each connection binds as, a service account that
	// may read the phone and language attributes and nothing more.
	// Placeholders are expanded. Default: none (anonymous searches).
	BindDN string `json:"bind_dn,omitempty"`

	// BindPassword is BindDN's password, usually {env.LDAP_PASSWORD} so that
	// it is not written into the config. Required with BindDN. It is never
	// logged nor put in an error.
	BindPassword string `json:"bind_password,omitempty"`

	// BaseDN is where the subtree search starts, e.g.
	// ou=people,dc=example,dc=com. Required.
	BaseDN string `json:"base_dn,omitempty"`

	// Filter selects the entry of an account and must contain {account}
	// exactly once, e.g. (mail={account}). The account replaces it escaped
	// per RFC 4515, so that "*" or ")(" in a name is only ever a value.
	// No entry is an unknown account; more than one is an error (503), as
	// the account is ambiguous. Required.
	Filter string `json:"filter,omitempty"`

	// PhoneAttribute holds the phone number. An entry without it is an
	// account without a phone. Default: mobile.
	PhoneAttribute string `json:"phone_attribute,omitempty"`

	// LangAttribute, if set, holds the language of the account's messages,
	// e.g. preferredLanguage (its first language is taken). Default: none.
	LangAttribute string `json:"lang_attribute,omitempty"`

	// Timeout bounds one lookup, connecting and binding included; a server
	// slower than that fails the request closed (503). Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is how many bound connections are kept for reuse, and the
	// most open at once. Default: 4.
	PoolSize int `json:"pool_size,omitempty"`

	dir *LDAP
}

// CaddyModule returns the Caddy module information.
func (LDAPModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".ldap",
		New: func() caddy.Module { return new(LDAPModule) },
	}
}

// Provision expands the placeholders and checks the settings. It does not
// connect: a server that is down at load is an outage like any other.
func (m *LDAPModule) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"url", &m.URL}, {"bind_dn", &m.BindDN}, {"bind_password", &m.BindPassword}} {
		if err := placeholder.Expand(nil, "directory ldap: "+f.name, f.s); err != nil {
			return err
		}
	}
	d, err := NewLDAP(LDAPConfig{
		URL:            m.URL,
		StartTLS:       m.StartTLS,
		BindDN:         m.BindDN,
		BindPassword:   m.BindPassword,
		BaseDN:         m.BaseDN,
		Filter:         m.Filter,
		PhoneAttribute: m.PhoneAttribute,
		LangAttribute:  m.LangAttribute,
		Timeout:        time.Duration(m.Timeout),
		PoolSize:       m.PoolSize,
	})
	if err != nil {
		return err // it names the directive: "directory ldap: ..."
	}
	m.dir = d
	return nil
}

// Lookup implements recovery.Directory.
func (m *LDAPModule) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	return m.dir.Lookup(ctx, account)
}

// Cleanup closes the pool's connections.
func (m *LDAPModule) Cleanup() error {
	if m.dir == nil {
		return nil
	}
	return m.dir.Close()
}

// UnmarshalCaddyfile reads
//
//	directory ldap <ldap:// or ldaps:// url> {
//	    bind_dn         <dn>
//	    bind_password   <password>            # usually {env.LDAP_PASSWORD}
//	    base_dn         <dn>
//	    filter          "(mail={account})"    # {account} exactly once, escaped per RFC 4515
//	    phone_attribute mobile                # default mobile
//	    lang_attribute  preferredLanguage
//	    start_tls       on|off
//	    timeout         <duration>            # default 3s
//	    pool_size       <n>                   # default 4
//	}
func (m *LDAPModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if err := cfparse.String(d, &m.URL); err != nil {
		return err
	}
	// A placeholder is checked once it is expanded, at load.
	if !strings.HasPrefix(m.URL, "{") && !strings.HasPrefix(m.URL, "ldap://") && !strings.HasPrefix(m.URL, "ldaps://") {
		return d.Errf("directory ldap: url '%s' must start with ldap:// or ldaps://", redactURL(m.URL))
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		name := d.Val()
		if err := seen.Once(d, "directory ldap"); err != nil {
			return err
		}
		var err error
		switch name {
		case "bind_dn":
			err = cfparse.String(d, &m.BindDN)
		case "bind_password":
			err = cfparse.String(d, &m.BindPassword)
		case "base_dn":
			err = cfparse.String(d, &m.BaseDN)
		case "filter":
			if err = cfparse.String(d, &m.Filter); err == nil && strings.Count(m.Filter, "{account}") != 1 {
				err = d.Errf("directory ldap: filter '%s' must contain {account} exactly once", m.Filter)
			}
		case "phone_attribute":
			err = cfparse.String(d, &m.PhoneAttribute)
		case "lang_attribute":
			err = cfparse.String(d, &m.LangAttribute)
		case "start_tls":
			m.StartTLS, err = cfparse.OnOff(d)
		case "timeout":
			err = cfparse.Duration(d, &m.Timeout)
		case "pool_size":
			err = cfparse.Int(d, &m.PoolSize)
		default:
			return d.Errf("directory ldap: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	for _, req := range []struct {
		name string
		set  bool
	}{{"base_dn", m.BaseDN != ""}, {"filter", m.Filter != ""}} {
		if !req.set {
			return d.Errf("directory ldap: %s is required", req.name)
		}
	}
	return nil
}

// redactURL hides a password written into a URL, for error messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// Interface guards
var (
	_ caddy.Provisioner  = (*LDAPModule)(nil)
	_ caddy.CleanerUpper = (*LDAPModule)(nil)
	_ cf.Unmarshaler     = (*LDAPModule)(nil)
	_ recovery.Directory = (*LDAPModule)(nil)
)
