// Package caddyfile adapts the sms_recovery and sms_recovery_verify
// Caddyfile directives into the JSON configuration of package module.
package caddyfile

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sms_recovery", parseRecovery)
	// Before forward_auth puts it ahead of respond, reverse_proxy,
	// php_fastcgi and file_server, with no global order option.
	httpcaddyfile.RegisterDirectiveOrder("sms_recovery", httpcaddyfile.Before, "forward_auth")
}

// parseRecovery sets up the gateway from Caddyfile tokens. Syntax:
//
//	sms_recovery [<matcher>] {
//	    path_prefix       /recovery
//	    site_name         "Example Mail"
//	    public_url        https://mail.example.com   # default: the site address, if it names one host
//	    language          en|de|nl|fr
//	    directory file    <path>
//	    directory http    <url> [{ timeout <duration> }]
//	    directory ldap    <ldap:// or ldaps:// url> { ... }   # see parseLDAP
//	    directory sql     postgres|mysql <dsn> { query <select>; timeout <d>; max_open_conns <n> ... }   # see parseSQLDirectory
//	    sms outbox        <path>
//	    sms messagebird {
//	        access_key <key>
//	        originator <name or number>
//	        endpoint   <url>
//	        timeout    <duration>
//	    }
//	    sms_queue         <size>
//	    message_template  <text/template>
//	    templates         <directory of page templates>
//	    password_min_length 12
//	    notify_on_reset   on|off
//	    notify_on_lock    on|off
//	    code_length       6
//	    code_ttl          5m
//	    max_attempts      5
//	    resend_interval   60s
//	    token_ttl         10m
//	    allowed_countries NL DE US
//	    limit    <scope> <events> <window>
//	    lockout  <failures> <window> <duration>
//	    ip_block <failures> <window> <duration>
//	    support  <text>
//	    secret   <base64> [<older base64> ...]
//	    storage memory [{ max_entries <n> }]
//	    storage redis <url> [{ prefix <p>; dial_timeout <d>; timeout <d>; pool_size <n> }]
//	    forward {
//	        path        <path>
//	        key_id      <id>
//	        hmac_key    <base64>
//	        ed25519_key <path to PEM>
//	        fields      <name> ...     # only these body fields reach the upstream
//	    }
//	}
//
// Without public_url, the site address is the public URL when the site block
// names exactly one host (see sitePublicURL); otherwise public_url is left
// out, and the config does not load until it is set.
func parseRecovery(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m module.Handler
	if err := UnmarshalRecovery(h.Dispenser, &m); err != nil {
		return nil, err
	}
	if m.PublicURL == "" && !h.IsNamedRoute() {
		m.PublicURL = sitePublicURL(siteAddresses(h), portOption(h, "http_port", "80"), portOption(h, "https_port", "443"))
	}
	return &m, nil
}

// UnmarshalRecovery fills m from the tokens of one sms_recovery directive.
func UnmarshalRecovery(d *cf.Dispenser, m *module.Handler) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		repeatable := name == "limit"
		if seen[name] && !repeatable {
			return d.Errf("duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "path_prefix":
			err = oneString(d, &m.PathPrefix)
		case "site_name":
			err = oneString(d, &m.SiteName)
		case "public_url":
			err = oneString(d, &m.PublicURL)
		case "language":
			err = oneString(d, &m.Language)
		case "support":
			err = oneString(d, &m.Support)
		case "message_template":
			err = oneString(d, &m.MessageTemplate)
		case "templates":
			err = oneString(d, &m.Templates)
		case "password_min_length":
			err = oneInt(d, &m.PasswordMinLength)
		case "directory":
			m.Directory, err = parseDirectory(d)
		case "sms":
			m.SMS, err = parseSMS(d, m.SMS)
		case "sms_queue":
			if m.SMS == nil {
				m.SMS = &module.SMS{}
			}
			err = oneInt(d, &m.SMS.QueueSize)
		case "notify_on_reset":
			var on bool
			on, err = onOff(d)
			m.NotifyOnReset = &on
		case "notify_on_lock":
			var on bool
			on, err = onOff(d)
			m.NotifyOnLock = &on
		case "code_length":
			err = oneInt(d, &m.CodeLength)
		case "max_attempts":
			err = oneInt(d, &m.MaxAttempts)
		case "code_ttl":
			err = oneDuration(d, &m.CodeTTL)
		case "resend_interval":
			err = oneDuration(d, &m.ResendInterval)
		case "token_ttl":
			err = oneDuration(d, &m.TokenTTL)
		case "allowed_countries":
			m.AllowedCountries = d.RemainingArgs()
			if len(m.AllowedCountries) == 0 {
				err = d.ArgErr()
			}
		case "limit":
			err = parseLimit(d, m)
		case "lockout":
			m.Lockout, err = parseThreshold(d)
		case "ip_block":
			m.IPBlock, err = parseThreshold(d)
		case "secret":
			m.Secrets = d.RemainingArgs()
			if len(m.Secrets) == 0 {
				err = d.ArgErr()
			}
		case "storage":
			m.Storage, err = parseStorage(d)
		case "forward":
			m.Forward, err = parseForward(d)
		default:
			return d.Errf("unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseDirectory(d *cf.Dispenser) (*module.Directory, error) {
	var dir module.Directory
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	kind := d.Val()
	if kind == "sql" {
		return parseSQLDirectory(d)
	}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch kind {
	case "file":
		dir.File = d.Val()
	case "http":
		dir.URL = d.Val()
	case "ldap":
		l, err := parseLDAP(d)
		if err != nil {
			return nil, err
		}
		return &module.Directory{LDAP: l}, nil
	default:
		return nil, d.Errf("directory: unknown source '%s' (want file, http, ldap or sql)", kind)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "timeout":
			if kind != "http" {
				return nil, d.Errf("directory file: unrecognized subdirective '%s'", d.Val())
			}
			if err := oneDuration(d, &dir.Timeout); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("directory: unrecognized subdirective '%s'", d.Val())
		}
	}
	return &dir, nil
}

// parseLDAP reads the rest of a directory ldap directive, its URL the
// current token. Syntax:
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
func parseLDAP(d *cf.Dispenser) (*module.LDAPDirectory, error) {
	l := &module.LDAPDirectory{URL: d.Val()}
	// A placeholder is checked once it is expanded, at load.
	if !strings.HasPrefix(l.URL, "{") && !strings.HasPrefix(l.URL, "ldap://") && !strings.HasPrefix(l.URL, "ldaps://") {
		return nil, d.Errf("directory ldap: url '%s' must start with ldap:// or ldaps://", redactURL(l.URL))
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("directory ldap: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "bind_dn":
			err = oneString(d, &l.BindDN)
		case "bind_password":
			err = oneString(d, &l.BindPassword)
		case "base_dn":
			err = oneString(d, &l.BaseDN)
		case "filter":
			if err = oneString(d, &l.Filter); err == nil && strings.Count(l.Filter, "{account}") != 1 {
				err = d.Errf("directory ldap: filter '%s' must contain {account} exactly once", l.Filter)
			}
		case "phone_attribute":
			err = oneString(d, &l.PhoneAttribute)
		case "lang_attribute":
			err = oneString(d, &l.LangAttribute)
		case "start_tls":
			l.StartTLS, err = onOff(d)
		case "timeout":
			err = oneDuration(d, &l.Timeout)
		case "pool_size":
			err = oneInt(d, &l.PoolSize)
		default:
			return nil, d.Errf("directory ldap: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, req := range []struct {
		name string
		set  bool
	}{{"base_dn", l.BaseDN != ""}, {"filter", l.Filter != ""}} {
		if !req.set {
			return nil, d.Errf("directory ldap: %s is required", req.name)
		}
	}
	return l, nil
}

// redactURL hides a password written into a URL, for error messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

func parseSMS(d *cf.Dispenser, prev *module.SMS) (*module.SMS, error) {
	s := &module.SMS{}
	if prev != nil {
		s.QueueSize = prev.QueueSize
	}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch kind := d.Val(); kind {
	case "outbox":
		if err := oneString(d, &s.Outbox); err != nil {
			return nil, err
		}
	case "messagebird":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		mb := &module.MessageBird{}
		seen := map[string]bool{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			name := d.Val()
			if seen[name] {
				return nil, d.Errf("sms messagebird: duplicate subdirective '%s'", name)
			}
			seen[name] = true
			var err error
			switch name {
			case "access_key":
				err = oneString(d, &mb.AccessKey)
			case "originator":
				err = oneString(d, &mb.Originator)
			case "endpoint":
				err = oneString(d, &mb.Endpoint)
			case "timeout":
				err = oneDuration(d, &mb.Timeout)
			default:
				return nil, d.Errf("sms messagebird: unrecognized subdirective '%s'", name)
			}
			if err != nil {
				return nil, err
			}
		}
		s.MessageBird = mb
	default:
		return nil, d.Errf("sms: unknown sender '%s' (want outbox or messagebird)", kind)
	}
	return s, nil
}

func parseLimit(d *cf.Dispenser, m *module.Handler) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return d.ArgErr()
	}
	events, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || events < 1 {
		return d.Errf("limit %s: events '%s' must be a whole number of at least 1", args[0], args[1])
	}
	window, err := caddy.ParseDuration(args[2])
	if err != nil || window <= 0 {
		return d.Errf("limit %s: window '%s' must be a positive duration", args[0], args[2])
	}
	if m.Limits == nil {
		m.Limits = map[string]module.Limit{}
	}
	if _, dup := m.Limits[args[0]]; dup {
		return d.Errf("limit: duplicate scope '%s'", args[0])
	}
	m.Limits[args[0]] = module.Limit{Events: events, Window: caddy.Duration(window)}
	return nil
}

func parseThreshold(d *cf.Dispenser) (*module.Threshold, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 3 {
		return nil, d.ArgErr()
	}
	failures, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || failures < 1 {
		return nil, d.Errf("%s: failures '%s' must be a whole number of at least 1", name, args[0])
	}
	var ds [2]time.Duration
	for i, a := range args[1:] {
		ds[i], err = caddy.ParseDuration(a)
		if err != nil || ds[i] <= 0 {
			return nil, d.Errf("%s: '%s' must be a positive duration", name, a)
		}
	}
	return &module.Threshold{Failures: failures, Window: caddy.Duration(ds[0]), Duration: caddy.Duration(ds[1])}, nil
}

func parseStorage(d *cf.Dispenser) (*module.Storage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch kind := d.Val(); kind {
	case "memory":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		mem := &module.MemoryStorage{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "max_entries":
				if err := oneInt(d, &mem.MaxEntries); err != nil {
					return nil, err
				}
			default:
				return nil, d.Errf("storage memory: unrecognized subdirective '%s'", d.Val())
			}
		}
		return &module.Storage{Memory: mem}, nil
	case "redis":
		r := &module.RedisStorage{}
		if err := oneString(d, &r.URL); err != nil {
			return nil, err
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			var err error
			switch d.Val() {
			case "prefix":
				err = oneString(d, &r.Prefix)
			case "dial_timeout":
				err = oneDuration(d, &r.DialTimeout)
			case "timeout":
				err = oneDuration(d, &r.Timeout)
			case "pool_size":
				err = oneInt(d, &r.PoolSize)
			default:
				return nil, d.Errf("storage redis: unrecognized subdirective '%s'", d.Val())
			}
			if err != nil {
				return nil, err
			}
		}
		return &module.Storage{Redis: r}, nil
	default:
		return nil, d.Errf("storage: unknown backend '%s' (want memory or redis)", kind)
	}
}

func parseForward(d *cf.Dispenser) (*module.Forward, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	f := &module.Forward{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("forward: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "path":
			err = oneString(d, &f.Path)
		case "key_id":
			err = oneString(d, &f.KeyID)
		case "hmac_key":
			err = oneString(d, &f.HMACKey)
		case "ed25519_key":
			err = oneString(d, &f.Ed25519Key)
		case "fields":
			f.Fields = d.RemainingArgs()
			if len(f.Fields) == 0 {
				err = d.ArgErr()
			}
		default:
			return nil, d.Errf("forward: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// oneString reads exactly one argument into s.
func oneString(d *cf.Dispenser, s *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*s = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func oneInt(d *cf.Dispenser, n *int) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s: '%s' is not a whole number", name, s)
	}
	*n = v
	return nil
}

func oneDuration(d *cf.Dispenser, out *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: '%s' is not a duration", name, s)
	}
	*out = caddy.Duration(v)
	return nil
}

func onOff(d *cf.Dispenser) (bool, error) {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return false, err
	}
	switch s {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, d.Errf("%s: '%s' must be on or off", name, s)
}
