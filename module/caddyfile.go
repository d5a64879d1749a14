package module

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// UnmarshalCaddyfile fills m from the tokens of one sms_recovery directive.
// Syntax:
//
//	sms_recovery [<matcher>] {
//	    path_prefix       /recovery
//	    site_name         "Example Mail"
//	    public_url        https://mail.example.com   # default: the site address, if it names one host
//	    language          en|de|nl|fr
//	    directory file    <path>
//	    directory http    <url> [{ timeout <duration> }]
//	    directory ldap    <ldap:// or ldaps:// url> { ... }   # see ldapdirectory.LDAP
//	    directory sql     postgres|mysql <dsn> { query <select>; timeout <d>; max_open_conns <n> ... }   # see sqldirectory.SQL
//	    directory <name>  ...                                  # any module http.handlers.sms_recovery.directories.<name>
//	    sms outbox        <path>
//	    sms messagebird {
//	        access_key <key>
//	        originator <name or number>
//	        endpoint   <url>
//	        timeout    <duration>
//	    }
//	    sms failover {                                         # the next sender takes what the one before did not
//	        <name> ...                                         # a sender, as after "sms"; at least two
//	    }
//	    sms http <url> { ... }                                 # see httpsms.HTTP
//	    sms <name> ...                                         # any module http.handlers.sms_recovery.senders.<name>
//	    sms_queue         <size>
//	    message_template  <text/template>
//	    templates         <directory of page templates>
//	    password_min_length 12
//	    notify_on_reset   on|off
//	    notify_on_lock    on|off
//	    notify {                                               # e-mail notices after a reset, with a not-me link
//	        mail  smtp|lmtp <host:port or unix/<path>> [{ starttls opportunistic|required|off; timeout <d> }]
//	        relay smtp <host:port> [{ ... }]                   # for alternate addresses; default: mail, if smtp
//	        from  "Example Mail <noreply@example.com>"
//	        mailbox on|off; alternate on|off; link_ttl 7d; tries 5; queue 100
//	    }
//	    code_length       6
//	    code_ttl          5m
//	    max_attempts      5
//	    resend_interval   60s
//	    token_ttl         10m
//	    trace_ttl         30d                                  # how long support can trace a reference
//	    allowed_countries NL DE US
//	    limit    <scope> <events> <window>
//	    sms_share [network <percent>%] [country <percent>%]    # of sms_global per IPv4 /24 or IPv6 /48, per country
//	    sms_spend { currency <name>; price <country> <amount> ...; default_price <amount>; daily <amount>; monthly <amount> }
//	    lockout  <failures> <window> <duration>
//	    ip_block <failures> <window> <duration>
//	    prefix_breaker off | { digits <n>; trip <codes> <window> <entered>%; block <first> <later> [<held from>] }
//	    support  <text>
//	    log_accounts hashed|clear                               # default hashed: logs and events name an account by its keyed hash
//	    handle_errors                                           # refusals go to the site's handle_errors routes, not the JSON body
//	    secret   <base64> [<older base64> ...]
//	    storage memory [{ max_entries <n> }]
//	    storage redis <url> [{ prefix <p>; dial_timeout <d>; timeout <d>; pool_size <n>; allow_volatile; allow_eviction; state_loss_hold <d> }]
//	    storage <name> ...                                     # any module http.handlers.sms_recovery.storage.<name>
//	    delivery_reports {
//	        bird_secret <whsec_…> [<older whsec_…>]   # Bird's webhook signing secret
//	    }
//	    forward {
//	        path        <path>
//	        key_id      <id>
//	        hmac_key    <base64>
//	        ed25519_key <path to PEM>
//	        fields      <name> ...     # only these body fields reach the upstream
//	    }
//	}
//
// directory, sms and storage hand the rest of their line and block to the
// guest module they name, whose UnmarshalCaddyfile reads it (cfparse.Guest):
// a module added with xcaddy is configured with the same directive.
//
// Without public_url, the Caddyfile adapter (package caddyfile) takes the
// site address as the public URL when the site block names exactly one host.
func (m *Handler) UnmarshalCaddyfile(d *cf.Dispenser) error {
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
			m.DirectoryRaw, err = cfparse.Guest(d, directory.Namespace, "source", "source")
		case "sms":
			m.SenderRaw, err = cfparse.Guest(d, sms.Namespace, "provider", "sender")
		case "sms_queue":
			err = oneInt(d, &m.SMSQueue)
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
		case "trace_ttl":
			err = oneDuration(d, &m.TraceTTL)
		case "allowed_countries":
			m.AllowedCountries = d.RemainingArgs()
			if len(m.AllowedCountries) == 0 {
				err = d.ArgErr()
			}
		case "limit":
			err = parseLimit(d, m)
		case "sms_share":
			m.SMSShare, err = parseShare(d)
		case "sms_spend":
			m.SMSSpend, err = parseSpend(d)
		case "lockout":
			m.Lockout, err = parseThreshold(d)
		case "ip_block":
			m.IPBlock, err = parseThreshold(d)
		case "prefix_breaker":
			m.PrefixBreaker, err = parsePrefixBreaker(d)
		case "secret":
			m.Secrets = d.RemainingArgs()
			if len(m.Secrets) == 0 {
				err = d.ArgErr()
			}
		case "storage":
			m.StorageRaw, err = cfparse.Guest(d, storage.Namespace, "backend", "backend")
		case "forward":
			m.Forward, err = parseForward(d)
		case "delivery_reports":
			m.DeliveryReports, err = parseDeliveryReports(d)
		case "notify":
			m.Notify, err = parseNotify(d)
		case "log_accounts":
			err = parseLogAccounts(d, m)
		case "handle_errors":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.HandleErrors = true
		default:
			return cfparse.Unknown(d, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseLimit(d *cf.Dispenser, m *Handler) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return d.ArgErr()
	}
	events, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || events < 1 {
		return d.Errf("limit %s: events '%s' must be a whole number of at least 1", args[0], args[1])
	}
	window, err := caddy.ParseDuration(args[2])
	if err != nil || window < leastWindow {
		return d.Errf("limit %s: window '%s' %s", args[0], args[2], durationProblem(err, leastWindow))
	}
	if m.Limits == nil {
		m.Limits = map[string]Limit{}
	}
	if _, dup := m.Limits[args[0]]; dup {
		return d.Errf("limit: duplicate scope '%s'", args[0])
	}
	m.Limits[args[0]] = Limit{Events: events, Window: caddy.Duration(window)}
	return nil
}

// durationProblem says what is wrong with a duration of a line: it did not
// parse (err), or it is below least.
func durationProblem(err error, least time.Duration) string {
	if err != nil {
		return "is not a duration such as 30m or 1h"
	}
	return "is below the least of " + shortDuration(least)
}

// parseLogAccounts reads log_accounts hashed|clear.
func parseLogAccounts(d *cf.Dispenser, m *Handler) error {
	if err := oneString(d, &m.LogAccounts); err != nil {
		return err
	}
	if m.LogAccounts != "hashed" && m.LogAccounts != "clear" {
		return d.Errf("log_accounts: '%s' is neither hashed nor clear", m.LogAccounts)
	}
	return nil
}

func parseThreshold(d *cf.Dispenser) (*Threshold, error) {
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
		if err != nil || ds[i] < leastWindow {
			return nil, d.Errf("%s: %s '%s' %s", name, [2]string{"window", "duration"}[i], a, durationProblem(err, leastWindow))
		}
	}
	return &Threshold{Failures: failures, Window: caddy.Duration(ds[0]), Duration: caddy.Duration(ds[1])}, nil
}

func parseForward(d *cf.Dispenser) (*Forward, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	f := &Forward{}
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
			err = cfparse.Secret(d, "forward: hmac_key", &f.HMACKey)
		case "ed25519_key":
			err = oneString(d, &f.Ed25519Key)
		case "fields":
			f.Fields = d.RemainingArgs()
			if len(f.Fields) == 0 {
				err = d.ArgErr()
			}
		default:
			return nil, cfparse.Unknown(d, "forward")
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseDeliveryReports reads
//
//	delivery_reports {
//	    bird_secret <whsec_…> [<older whsec_…>]
//	}
func parseDeliveryReports(d *cf.Dispenser) (*DeliveryReports, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	dr := &DeliveryReports{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "bird_secret":
			if dr.BirdSecrets != nil {
				return nil, d.Err("delivery_reports: duplicate subdirective 'bird_secret'")
			}
			if dr.BirdSecrets = d.RemainingArgs(); len(dr.BirdSecrets) == 0 {
				return nil, d.ArgErr()
			}
		default:
			return nil, cfparse.Unknown(d, "delivery_reports")
		}
	}
	return dr, nil
}

// The one-argument readers, shared with the guest modules.
var (
	oneString   = cfparse.String
	oneInt      = cfparse.Int
	oneDuration = cfparse.Duration
	onOff       = cfparse.OnOff
)

// Interface guards
var _ cf.Unmarshaler = (*Handler)(nil)
