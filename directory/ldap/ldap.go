// Package ldapdirectory is the directory
// http.handlers.sms_recovery.directories.ldap: a subtree search of an LDAP
// server through a small pool of bound connections.
package ldapdirectory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-ldap/ldap/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/ldapconn"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(new(LDAP))
}

// Defaults.
const (
	defaultTimeout        = 3 * time.Second
	defaultPoolSize       = 4
	defaultPhoneAttribute = "mobile" // of inetOrgPerson (RFC 2798, from cosine)
)

// LDAP is the directory http.handlers.sms_recovery.directories.ldap: a
// subtree search of an LDAP server, such as the mobile attribute of
// inetOrgPerson entries. JSON: {"source": "ldap", "url":
// "ldaps://ldap.example.com", "base_dn": ..., "filter": "(mail={account})"}.
//
// It keeps a small pool of bound connections: a connection that breaks is
// closed and a new one dialled on the next lookup, so the directory
// recovers by itself after an outage. Provision does not connect: a server
// that is down at load is an outage like any other. Cleanup closes the
// pool. It is safe for concurrent use.
//
// No entry, or an entry without the phone attribute, is
// recovery.ErrUnknownAccount. More than one entry is an error: the account
// is ambiguous and the flow fails closed. A server that cannot be reached,
// refuses the bind or does not answer in time gives an error matching
// recovery.ErrUnavailable. Errors never hold the account, the phone number
// or the password.
type LDAP struct {
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the first
	// byte, checked against the system's roots). Nothing may follow the
	// host but an empty path. Over ldap:// without start_tls the bind
	// password crosses the network in clear: use either only on a trusted
	// network. Placeholders such as {env.LDAP_URL} are expanded. Required.
	URL string `json:"url,omitempty"`

	// StartTLS upgrades an ldap:// connection to TLS (the StartTLS
	// operation) before binding; a server that refuses it is an outage,
	// never a reason to go on in clear. Not with ldaps://. Default: off.
	StartTLS bool `json:"start_tls,omitempty"`

	// BindDN is the DN each connection binds as (simple bind), a service
	// account that may read the phone and language attributes and nothing
	// more. Placeholders are expanded. Default: none (anonymous searches).
	BindDN string `json:"bind_dn,omitempty"`

	// BindPassword is BindDN's password, usually {env.LDAP_PASSWORD} so that
	// it is not written into the config. Required with BindDN: servers take
	// a DN without a password for an anonymous bind that "succeeds" (RFC
	// 4513 §5.1.2). It is never logged nor put in an error.
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
	// e.g. preferredLanguage ("nl", or "de-CH, en;q=0.8": the first is
	// taken). Default: none.
	LangAttribute string `json:"lang_attribute,omitempty"`

	// EmailAttribute, if set, holds an alternate e-mail address of the
	// account's owner, outside the mailbox, that reset notices also go to
	// (notify), e.g. an attribute of the site's own schema. Default: none.
	EmailAttribute string `json:"email_attribute,omitempty"`

	// Timeout bounds one lookup: waiting for a connection, dialling,
	// StartTLS, binding and searching. A server slower than that fails the
	// request closed (503). Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is how many bound connections are kept for reuse, and the
	// most open at once; lookups beyond it wait (within Timeout).
	// Default: 4.
	PoolSize int `json:"pool_size,omitempty"`

	tlsConfig  *tls.Config // for ldaps:// and StartTLS; tests set their roots
	filt       ldapconn.Filter
	attributes []string

	slots chan struct{}   // one per connection that may be open
	idle  chan *ldap.Conn // bound connections waiting for a lookup

	mu     sync.Mutex
	closed bool
}

// CaddyModule returns the Caddy module information.
func (*LDAP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  directory.Namespace + ".ldap",
		New: func() caddy.Module { return new(LDAP) },
	}
}

// Provision expands the placeholders, fills the defaults and makes the
// pool, empty.
func (l *LDAP) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"url", &l.URL}, {"bind_dn", &l.BindDN}, {"bind_password", &l.BindPassword}} {
		if err := placeholder.Expand(nil, "directory ldap: "+f.name, f.s); err != nil {
			return err
		}
	}
	if l.PhoneAttribute == "" {
		l.PhoneAttribute = defaultPhoneAttribute
	}
	if l.Timeout == 0 {
		l.Timeout = caddy.Duration(defaultTimeout)
	}
	if l.PoolSize == 0 {
		l.PoolSize = defaultPoolSize
	}
	l.filt = ldapconn.NewFilter(l.Filter)
	l.attributes = []string{l.PhoneAttribute}
	if l.LangAttribute != "" {
		l.attributes = append(l.attributes, l.LangAttribute)
	}
	if l.EmailAttribute != "" {
		l.attributes = append(l.attributes, l.EmailAttribute)
	}
	size := max(l.PoolSize, 0) // Validate refuses a negative one
	l.slots = make(chan struct{}, size)
	l.idle = make(chan *ldap.Conn, size)
	if l.tlsConfig == nil {
		l.tlsConfig = ldapconn.TLSConfig(l.URL)
	}
	return nil
}

// Validate checks the settings.
func (l *LDAP) Validate() error {
	if err := l.server().Check(); err != nil {
		return fmt.Errorf("directory ldap: %w", err)
	}
	if l.BaseDN == "" {
		return errors.New("directory ldap: base_dn is required")
	}
	if _, err := ldap.ParseDN(l.BaseDN); err != nil {
		return fmt.Errorf("directory ldap: base_dn %q is not a DN: %w", l.BaseDN, err)
	}
	if err := l.filt.Check(); err != nil {
		return fmt.Errorf("directory ldap: %w", err)
	}
	for _, a := range []string{l.PhoneAttribute, l.LangAttribute, l.EmailAttribute} {
		if a != "" && !validAttribute(a) {
			return fmt.Errorf("directory ldap: %q is not an attribute name", a)
		}
	}
	if l.Timeout < 0 {
		return fmt.Errorf("directory ldap: negative timeout %s", time.Duration(l.Timeout))
	}
	if l.PoolSize < 0 {
		return fmt.Errorf("directory ldap: negative pool_size %d", l.PoolSize)
	}
	return nil
}

// validAttribute reports whether a is an attribute description: a name or
// an OID, with options (RFC 4512 §2.5).
func validAttribute(a string) bool {
	for i, r := range a {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '-' || r == ';' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return a != ""
}

// filter returns the search filter for account (ldapconn.Filter.For).
func (l *LDAP) filter(account string) string {
	return l.filt.For(account)
}

// Lookup searches the directory for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount when no entry matches, when the entry has no
// phone number and, without asking, for a name the rule refuses; and an
// error matching recovery.ErrUnavailable when the server cannot tell.
func (l *LDAP) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(l.Timeout))
	defer cancel()
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return recovery.Entry{}, unavailable(fmt.Errorf("waiting for a connection: %w", ctx.Err()))
	}
	defer func() { <-l.slots }()

	// A pooled connection may have broken since it was last used (the
	// server restarted, an idle timeout): then the search fails at once
	// and is tried again, once, on a new connection.
	for attempt := 0; ; attempt++ {
		conn, reused, err := l.conn(ctx)
		if err != nil {
			return recovery.Entry{}, unavailable(err)
		}
		res, err := l.search(ctx, conn, account)
		if err != nil && ldapconn.IsConnError(err) {
			conn.Close()
			if reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return recovery.Entry{}, unavailable(err)
		}
		l.put(conn)
		if err != nil {
			return recovery.Entry{}, err
		}
		return l.entry(res)
	}
}

// conn returns an idle connection, or a new bound one. A slot is held.
func (l *LDAP) conn(ctx context.Context) (c *ldap.Conn, reused bool, err error) {
	for {
		select {
		case c := <-l.idle:
			if c.IsClosing() { // the server closed it while it was idle
				c.Close()
				continue
			}
			return c, true, nil
		default:
		}
		c, err := l.dial(ctx)
		return c, false, err
	}
}

// dial connects, upgrades with StartTLS if configured, and binds, all
// within ctx's deadline.
func (l *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	if l.isClosed() {
		return nil, errors.New("directory closed")
	}
	return ldapconn.Dial(ctx, l.server())
}

// server is where dial connects.
func (l *LDAP) server() ldapconn.Server {
	return ldapconn.Server{URL: l.URL, StartTLS: l.StartTLS, BindDN: l.BindDN, BindPassword: l.BindPassword, TLS: l.tlsConfig}
}

// search runs the subtree search for account. Its errors are connection
// errors (isConnError) or errors matching recovery.ErrUnavailable.
func (l *LDAP) search(ctx context.Context, c *ldap.Conn, account string) (*ldap.SearchResult, error) {
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline)
	if left <= 0 {
		return nil, ldap.NewError(ldap.ErrorNetwork, context.DeadlineExceeded)
	}
	c.SetTimeout(left)
	req := ldap.NewSearchRequest(l.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, // one entry is the answer; a second makes it ambiguous
		int(math.Ceil(left.Seconds())), false,
		l.filter(account), l.attributes, nil)
	res, err := c.Search(req)
	if err == nil {
		return res, nil
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, unavailable(errors.New("more than one entry matches the account; refusing an ambiguous answer"))
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		// The base DN is gone: a directory misconfigured, not an
		// account unknown.
		return nil, unavailable(fmt.Errorf("searching: base_dn %q does not exist", l.BaseDN))
	}
	if ldapconn.IsConnError(err) {
		return nil, err
	}
	return nil, unavailable(fmt.Errorf("searching: %w", ldapconn.CleanError(err)))
}

// entry reads the answer of a search.
func (l *LDAP) entry(res *ldap.SearchResult) (recovery.Entry, error) {
	switch len(res.Entries) {
	case 0:
		return recovery.Entry{}, recovery.ErrUnknownAccount
	case 1:
	default:
		return recovery.Entry{}, unavailable(errors.New("more than one entry matches the account; refusing an ambiguous answer"))
	}
	e := res.Entries[0]
	var entry recovery.Entry
	// The first value that is not blank: an inetOrgPerson may list more
	// than one mobile, each of them the person's own.
	for _, v := range e.GetEqualFoldAttributeValues(l.PhoneAttribute) {
		if v = strings.TrimSpace(v); v != "" {
			entry.Phone = v
			break
		}
	}
	if entry.Phone == "" {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	if l.LangAttribute != "" {
		// preferredLanguage has the syntax of Accept-Language (RFC 2798
		// §2.7): the first range is the one preferred.
		lang := e.GetEqualFoldAttributeValue(l.LangAttribute)
		lang, _, _ = strings.Cut(lang, ",")
		lang, _, _ = strings.Cut(lang, ";")
		entry.Lang = strings.TrimSpace(lang)
	}
	if l.EmailAttribute != "" {
		entry.Email = strings.TrimSpace(e.GetEqualFoldAttributeValue(l.EmailAttribute))
	}
	return entry, nil
}

// put returns a connection to the pool, or closes it if the pool is full or
// closed.
func (l *LDAP) put(c *ldap.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || c.IsClosing() {
		c.Close()
		return
	}
	select {
	case l.idle <- c:
	default:
		c.Close()
	}
}

func (l *LDAP) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Cleanup closes the idle connections; those in use are closed when their
// lookup ends. Lookups after Cleanup fail.
func (l *LDAP) Cleanup() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for {
		select {
		case c := <-l.idle:
			c.Close()
		default:
			return nil
		}
	}
}

func unavailable(err error) error {
	return directory.Unavailable("ldap", err)
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
//	    email_attribute <attribute>           # an alternate address, for reset notices
//	    start_tls       on|off
//	    timeout         <duration>            # default 3s
//	    pool_size       <n>                   # default 4
//	}
func (l *LDAP) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if err := cfparse.Secret(d, "directory ldap: url", &l.URL); err != nil {
		return err
	}
	// A placeholder is checked once it is expanded, at load.
	if !strings.HasPrefix(l.URL, "{") && !strings.HasPrefix(l.URL, "ldap://") && !strings.HasPrefix(l.URL, "ldaps://") {
		return d.Errf("directory ldap: url '%s' must start with ldap:// or ldaps://", ldapconn.RedactURL(l.URL))
	}
	err := cfparse.Block(d, "directory ldap", map[string]func() error{
		"bind_dn":         func() error { return cfparse.String(d, &l.BindDN) },
		"bind_password":   func() error { return cfparse.Secret(d, "directory ldap: bind_password", &l.BindPassword) },
		"base_dn":         func() error { return cfparse.String(d, &l.BaseDN) },
		"phone_attribute": func() error { return cfparse.String(d, &l.PhoneAttribute) },
		"lang_attribute":  func() error { return cfparse.String(d, &l.LangAttribute) },
		"email_attribute": func() error { return cfparse.String(d, &l.EmailAttribute) },
		"timeout":         func() error { return cfparse.Duration(d, &l.Timeout) },
		"pool_size":       func() error { return cfparse.Int(d, &l.PoolSize) },
		"start_tls": func() (err error) {
			l.StartTLS, err = cfparse.OnOff(d)
			return err
		},
		"filter": func() error {
			err := cfparse.String(d, &l.Filter)
			if err == nil && strings.Count(l.Filter, ldapconn.AccountPlaceholder) != 1 {
				err = d.Errf("directory ldap: filter '%s' must contain {account} exactly once", l.Filter)
			}
			return err
		},
	})
	switch {
	case err != nil:
		return err
	case l.BaseDN == "":
		return d.Err("directory ldap: base_dn is required")
	case l.Filter == "":
		return d.Err("directory ldap: filter is required")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*LDAP)(nil)
	_ caddy.Validator    = (*LDAP)(nil)
	_ caddy.CleanerUpper = (*LDAP)(nil)
	_ cf.Unmarshaler     = (*LDAP)(nil)
	_ recovery.Directory = (*LDAP)(nil)
)
