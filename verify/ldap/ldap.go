// Package ldapwriter holds the ldap password writer of the
// sms_recovery_verify handler: it finds the one entry of an account with a
// subtree search and sets its password, either with the Password Modify
// extended operation (RFC 3062; the server hashes) or by replacing its
// userPassword with a hash that both OpenLDAP and Dovecot read.
//
// It must never write when the search does not find exactly one entry, and
// never log nor put in an error the password, its hash or the bind
// password.
package ldapwriter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-ldap/ldap/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/ldapconn"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify/dovecotpw"
)

func init() {
	caddy.RegisterModule(new(Writer))
}

// The modes, the schemes replace takes, and the defaults.
const (
	ModePasswdModify = "passwd_modify"
	ModeReplace      = "replace"

	schemeBLF         = "BLF-CRYPT"
	schemeSSHA512     = "SSHA512"
	schemeSHA512Crypt = "SHA512-CRYPT"
	defaultTimeout    = 3 * time.Second
	passwordAttr      = "userPassword"
	noAttributes      = "1.1" // RFC 4511 §4.5.1.8: the search returns the DN alone
)

// Writer is http.handlers.sms_recovery_verify.writers.ldap. JSON:
// {"writer": "ldap", "url": "ldaps://ldap.example.com", "bind_dn": ...,
// "base_dn": ..., "filter": "(uid={account})"}.
//
// Each SetPassword dials, binds, searches and writes on a connection of its
// own, closed at the end: resets are rare, and a server that was down is
// used again as soon as it is back. No entry is verify.ErrUnknownAccount;
// more than one is an error and nothing is written. A server that cannot be
// reached, refuses the bind or the write, or does not answer in time is an
// error (the verifier answers 500 and the gateway keeps the reset token).
type Writer struct {
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the first
	// byte, checked against the system's roots). Nothing may follow the
	// host but an empty path. Over ldap:// without start_tls the bind
	// password and, in mode passwd_modify, the new password cross the
	// network in clear: use it only to a server on this machine.
	// Placeholders such as {env.LDAP_URL} are expanded. Required.
	URL string `json:"url,omitempty"`

	// StartTLS upgrades an ldap:// connection to TLS (the StartTLS
	// operation) before binding; a server that refuses it is an error,
	// never a reason to go on in clear. Not with ldaps://. Default: off.
	StartTLS bool `json:"start_tls,omitempty"`

	// BindDN is the DN the writer binds as (simple bind): an account that
	// may search base_dn and write the userPassword of the entries under
	// it, and nothing more. Placeholders are expanded. Required: an
	// anonymous bind may not set passwords.
	BindDN string `json:"bind_dn,omitempty"`

	// BindPassword is BindDN's password, usually {env.LDAP_WRITER_PASSWORD}
	// so that it is not written into the config. It is never logged nor
	// put in an error. Required.
	BindPassword string `json:"bind_password,omitempty"`

	// BaseDN is where the subtree search for the account's entry starts,
	// e.g. ou=people,dc=example,dc=com. Required.
	BaseDN string `json:"base_dn,omitempty"`

	// Filter selects the entry of an account and must contain {account}
	// exactly once, e.g. (uid={account}). The account replaces it escaped
	// per RFC 4515, so that "*" or ")(" in a name is only ever a value.
	// No entry is an unknown account (404); more than one is an error and
	// nothing is written. Required.
	Filter string `json:"filter,omitempty"`

	// Mode is how the password is set. passwd_modify sends the new
	// password, under the bind, in the Password Modify extended operation
	// (RFC 3062): the server hashes it as it is configured to (OpenLDAP:
	// olcPasswordHash, default {SSHA}) and applies its password policy.
	// replace hashes it here, in scheme, and replaces the entry's
	// userPassword with that value alone. Default: passwd_modify.
	Mode string `json:"mode,omitempty"`

	// Scheme is the hash of mode replace: BLF-CRYPT or SHA512-CRYPT,
	// written as {CRYPT}$2b$... or {CRYPT}$6$..., which OpenLDAP (through
	// crypt(3)) and Dovecot both read; or SSHA512, written as {SSHA512}..., which Dovecot reads and
	// OpenLDAP reads with its pw-sha2 module loaded. Not with
	// passwd_modify, where the server chooses. Default: BLF-CRYPT.
	Scheme string `json:"scheme,omitempty"`

	// Timeout bounds one write: dialling, StartTLS, binding, searching and
	// writing. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	tlsConfig *tls.Config // for ldaps:// and StartTLS; tests set their roots
	filter    ldapconn.Filter
}

// CaddyModule returns the Caddy module information.
func (*Writer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  verify.WriterNamespace + ".ldap",
		New: func() caddy.Module { return new(Writer) },
	}
}

// Provision expands the placeholders and fills the defaults. It does not
// connect: a server that is down at load is an outage like any other.
func (w *Writer) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"url", &w.URL}, {"bind_dn", &w.BindDN}, {"bind_password", &w.BindPassword}} {
		if err := placeholder.Expand(nil, "password ldap: "+f.name, f.s); err != nil {
			return err
		}
	}
	if w.Mode == "" {
		w.Mode = ModePasswdModify
	}
	if w.Mode == ModeReplace && w.Scheme == "" {
		w.Scheme = schemeBLF
	}
	if w.Timeout == 0 {
		w.Timeout = caddy.Duration(defaultTimeout)
	}
	if w.tlsConfig == nil {
		w.tlsConfig = ldapconn.TLSConfig(w.URL)
	}
	w.filter = ldapconn.NewFilter(w.Filter)
	return nil
}

// Validate checks the settings.
func (w *Writer) Validate() error {
	if err := w.server().Check(); err != nil {
		return fmt.Errorf("password ldap: %w", err)
	}
	switch {
	case w.BindDN == "":
		return errors.New("password ldap: bind_dn is required (an anonymous bind may not set passwords)")
	case w.BaseDN == "":
		return errors.New("password ldap: base_dn is required")
	}
	if _, err := ldap.ParseDN(w.BaseDN); err != nil {
		return fmt.Errorf("password ldap: base_dn %q is not a DN: %w", w.BaseDN, err)
	}
	if err := w.filter.Check(); err != nil {
		return fmt.Errorf("password ldap: %w", err)
	}
	switch w.Mode {
	case ModePasswdModify:
		if w.Scheme != "" {
			return fmt.Errorf("password ldap: scheme %q is for mode replace (with passwd_modify the server hashes)", w.Scheme)
		}
	case ModeReplace:
		if w.Scheme != schemeBLF && w.Scheme != schemeSHA512Crypt && w.Scheme != schemeSSHA512 {
			// ARGON2ID: Dovecot reads {ARGON2ID}, OpenLDAP's argon2
			// module {ARGON2}; no one value serves both.
			return fmt.Errorf("password ldap: scheme %q is not one of %s, %s, %s (the schemes both OpenLDAP and Dovecot read)",
				w.Scheme, schemeBLF, schemeSHA512Crypt, schemeSSHA512)
		}
	default:
		return fmt.Errorf("password ldap: mode %q is not %s or %s", w.Mode, ModePasswdModify, ModeReplace)
	}
	if w.Timeout < 0 {
		return fmt.Errorf("password ldap: negative timeout %s", time.Duration(w.Timeout))
	}
	return nil
}

// server is where SetPassword connects.
func (w *Writer) server() ldapconn.Server {
	return ldapconn.Server{URL: w.URL, StartTLS: w.StartTLS, BindDN: w.BindDN, BindPassword: w.BindPassword, TLS: w.tlsConfig}
}

// SetPassword finds account's one entry and sets its password.
func (w *Writer) SetPassword(ctx context.Context, account, password string) error {
	if password == "" {
		// Password Modify without a new password asks the server to
		// make one up, which no one would ever learn.
		return errors.New("password ldap: no password to set")
	}
	var hashed string
	if w.Mode == ModeReplace {
		h, err := hash(w.Scheme, password)
		if err != nil {
			return err
		}
		hashed = h
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.Timeout))
	defer cancel()
	c, err := ldapconn.Dial(ctx, w.server())
	if err != nil {
		return fmt.Errorf("password ldap: %w", err)
	}
	defer c.Close()
	dn, err := w.find(ctx, c, account)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// The reset's request went away (the gateway gave up on it):
		// it will not count the reset as done, so nor may this.
		return fmt.Errorf("password ldap: %w", err)
	}
	if w.Mode == ModeReplace {
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace(passwordAttr, []string{hashed})
		err = c.Modify(req)
	} else {
		_, err = c.PasswordModify(ldap.NewPasswordModifyRequest(dn, "", password))
	}
	if err != nil {
		return fmt.Errorf("password ldap: setting the password (%s): %w", w.Mode, ldapconn.CleanError(err))
	}
	return nil
}

// find returns the DN of account's one entry.
func (w *Writer) find(ctx context.Context, c *ldap.Conn, account string) (string, error) {
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline)
	if left <= 0 {
		return "", fmt.Errorf("password ldap: searching: %w", context.DeadlineExceeded)
	}
	req := ldap.NewSearchRequest(w.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, // one entry is the answer; a second makes it ambiguous
		int(math.Ceil(left.Seconds())), false,
		w.filter.For(account), []string{noAttributes}, nil)
	res, err := c.Search(req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return "", errors.New("password ldap: more than one entry matches the account; nothing written")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		// The base DN is gone: a directory misconfigured, not an
		// account unknown.
		return "", fmt.Errorf("password ldap: searching: base_dn %q does not exist", w.BaseDN)
	case err != nil:
		return "", fmt.Errorf("password ldap: searching: %w", ldapconn.CleanError(err))
	case len(res.Entries) == 0:
		return "", fmt.Errorf("password ldap: %w", verify.ErrUnknownAccount)
	}
	return res.Entries[0].DN, nil
}

// hash returns password hashed in scheme as userPassword holds it for
// both OpenLDAP and Dovecot. OpenLDAP has no {BLF-CRYPT}, but its {CRYPT}
// hands the hash to crypt(3), which reads bcrypt's $2b$ on Debian (libxcrypt) and
// most systems, as Dovecot's {CRYPT} does.
func hash(scheme, password string) (string, error) {
	h, err := dovecotpw.Hash(scheme, password)
	if errors.Is(err, dovecotpw.ErrTooLong) {
		return "", fmt.Errorf("%w: %w", verify.ErrPasswordTooLong, err)
	} else if err != nil {
		return "", err
	}
	if scheme == schemeBLF || scheme == schemeSHA512Crypt {
		h = "{CRYPT}" + strings.TrimPrefix(h, "{"+scheme+"}")
	}
	return h, nil
}

// UnmarshalCaddyfile reads
//
//	password ldap <ldap:// or ldaps:// url> {
//	    bind_dn       <dn>
//	    bind_password <password>            # usually {env.LDAP_WRITER_PASSWORD}
//	    base_dn       <dn>
//	    filter        "(uid={account})"     # {account} exactly once, escaped per RFC 4515
//	    mode          passwd_modify|replace # default passwd_modify
//	    scheme        BLF-CRYPT|SHA512-CRYPT|SSHA512 # replace only; default BLF-CRYPT
//	    start_tls     on|off
//	    timeout       <duration>            # default 3s
//	}
func (w *Writer) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module's name
	if err := cfparse.Secret(d, "password ldap: url", &w.URL); err != nil {
		return err
	}
	// A placeholder is checked once it is expanded, at load.
	if !strings.HasPrefix(w.URL, "{") && !strings.HasPrefix(w.URL, "ldap://") && !strings.HasPrefix(w.URL, "ldaps://") {
		return d.Errf("password ldap: url '%s' must start with ldap:// or ldaps://", ldapconn.RedactURL(w.URL))
	}
	err := cfparse.Block(d, "password ldap", map[string]func() error{
		"bind_dn":       func() error { return cfparse.String(d, &w.BindDN) },
		"bind_password": func() error { return cfparse.Secret(d, "password ldap: bind_password", &w.BindPassword) },
		"base_dn":       func() error { return cfparse.String(d, &w.BaseDN) },
		"mode":          func() error { return cfparse.String(d, &w.Mode) },
		"scheme":        func() error { return cfparse.String(d, &w.Scheme) },
		"timeout":       func() error { return cfparse.Duration(d, &w.Timeout) },
		"start_tls": func() (err error) {
			w.StartTLS, err = cfparse.OnOff(d)
			return err
		},
		"filter": func() error {
			err := cfparse.String(d, &w.Filter)
			if err == nil && strings.Count(w.Filter, ldapconn.AccountPlaceholder) != 1 {
				err = d.Errf("password ldap: filter '%s' must contain {account} exactly once", w.Filter)
			}
			return err
		},
	})
	switch {
	case err != nil:
		return err
	case w.BindDN == "":
		return d.Err("password ldap: bind_dn is required")
	case w.BaseDN == "":
		return d.Err("password ldap: base_dn is required")
	case w.Filter == "":
		return d.Err("password ldap: filter is required")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Writer)(nil)
	_ caddy.Validator       = (*Writer)(nil)
	_ cf.Unmarshaler        = (*Writer)(nil)
	_ verify.PasswordWriter = (*Writer)(nil)
)
