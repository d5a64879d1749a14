package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Defaults of an LDAP directory.
const (
	// DefaultLDAPTimeout bounds one lookup, connecting and binding included.
	DefaultLDAPTimeout = 3 * time.Second
	// DefaultLDAPPoolSize is how many bound connections are kept, and the
	// most that are open at once.
	DefaultLDAPPoolSize = 4
	// DefaultPhoneAttribute is the mobile attribute of inetOrgPerson
	// (RFC 2798, from cosine).
	DefaultPhoneAttribute = "mobile"
	// AccountPlaceholder is replaced in the filter by the escaped account.
	AccountPlaceholder = "{account}"
)

// LDAPConfig configures an LDAP directory.
type LDAPConfig struct {
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the first
	// byte). Nothing may follow the host but an empty path.
	URL string
	// StartTLS upgrades an ldap:// connection with the StartTLS operation
	// before binding, so the password never crosses the network in clear.
	StartTLS bool
	// TLSConfig is used for ldaps:// and StartTLS. Default: the system's
	// roots, checked against the URL's host. Tests set RootCAs here.
	TLSConfig *tls.Config
	// BindDN and BindPassword authenticate each connection (simple bind).
	// With no BindDN the searches are anonymous. A BindDN without a
	// password is refused: servers treat it as an anonymous bind that
	// "succeeds" (RFC 4513 §5.1.2).
	BindDN       string
	BindPassword string
	// BaseDN is where the subtree search starts.
	BaseDN string
	// Filter selects the entry of an account, e.g. "(mail={account})". It
	// must hold {account} exactly once; the account replaces it escaped
	// per RFC 4515, so that it is only ever a value.
	Filter string
	// PhoneAttribute holds the phone number. Default: mobile.
	PhoneAttribute string
	// LangAttribute, if set, holds the preferred language, e.g.
	// preferredLanguage ("nl", or "de-CH, en;q=0.8": the first is taken).
	LangAttribute string
	// Timeout bounds one lookup: waiting for a connection, dialling,
	// StartTLS, binding and searching. Default: 3s.
	Timeout time.Duration
	// PoolSize is how many bound connections are kept for reuse, and the
	// most open at once; lookups beyond it wait (within Timeout).
	// Default: 4.
	PoolSize int
}

// LDAP is a recovery.Directory that searches an LDAP server, such as the
// mobile attribute of inetOrgPerson entries. It keeps a small pool of bound
// connections: a connection that breaks is closed and a new one dialled on
// the next lookup, so the directory recovers by itself after an outage. It
// is safe for concurrent use.
//
// No entry, or an entry without the phone attribute, is
// recovery.ErrUnknownAccount. More than one entry is an error: the account
// is ambiguous and the flow fails closed. A server that cannot be reached,
// refuses the bind or does not answer in time gives an error matching
// recovery.ErrUnavailable. Errors never hold the account, the phone number
// or the password.
type LDAP struct {
	url        string
	startTLS   bool
	tlsConfig  *tls.Config
	bindDN     string
	bindPW     string
	baseDN     string
	before     string // the filter before {account}
	after      string // and after it
	attributes []string
	phoneAttr  string
	langAttr   string
	timeout    time.Duration

	slots chan struct{}   // one per connection that may be open
	idle  chan *ldap.Conn // bound connections waiting for a lookup

	mu     sync.Mutex
	closed bool
}

// NewLDAP checks the configuration and returns the directory. It does not
// connect: a server that is down at start is an outage like any other.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("directory ldap: url does not parse") // the error would quote a password in it
	}
	switch {
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		return nil, fmt.Errorf("directory ldap: url %q is not ldap:// or ldaps://", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("directory ldap: url %q has no host", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("directory ldap: url %q holds credentials (use bind_dn and bind_password)", u.Redacted())
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		// An RFC 4516 URL can carry a base DN, attributes and a filter;
		// they are options here, and two places to say one thing is one
		// too many.
		return nil, fmt.Errorf("directory ldap: url %q has more than scheme, host and port (use base_dn and filter)", u.Redacted())
	}
	if cfg.StartTLS && u.Scheme == "ldaps" {
		return nil, errors.New("directory ldap: start_tls with an ldaps:// url (the connection is TLS already)")
	}
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		return nil, errors.New("directory ldap: bind_dn without bind_password (an unauthenticated bind)")
	}
	if cfg.BindDN == "" && cfg.BindPassword != "" {
		return nil, errors.New("directory ldap: bind_password without bind_dn")
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("directory ldap: base_dn is required")
	}
	if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("directory ldap: base_dn %q is not a DN: %w", cfg.BaseDN, err)
	}
	before, after, err := splitFilter(cfg.Filter)
	if err != nil {
		return nil, fmt.Errorf("directory ldap: filter %q %w", cfg.Filter, err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("directory ldap: negative timeout %s", cfg.Timeout)
	}
	if cfg.PoolSize < 0 {
		return nil, fmt.Errorf("directory ldap: negative pool_size %d", cfg.PoolSize)
	}
	d := &LDAP{
		url: cfg.URL, startTLS: cfg.StartTLS,
		bindDN: cfg.BindDN, bindPW: cfg.BindPassword, baseDN: cfg.BaseDN,
		before: before, after: after,
		phoneAttr: cfg.PhoneAttribute, langAttr: cfg.LangAttribute,
		timeout: cfg.Timeout,
	}
	if d.phoneAttr == "" {
		d.phoneAttr = DefaultPhoneAttribute
	}
	for _, a := range []string{d.phoneAttr, d.langAttr} {
		if a != "" && !validAttribute(a) {
			return nil, fmt.Errorf("directory ldap: %q is not an attribute name", a)
		}
	}
	d.attributes = []string{d.phoneAttr}
	if d.langAttr != "" {
		d.attributes = append(d.attributes, d.langAttr)
	}
	if d.timeout == 0 {
		d.timeout = DefaultLDAPTimeout
	}
	size := cfg.PoolSize
	if size == 0 {
		size = DefaultLDAPPoolSize
	}
	d.slots = make(chan struct{}, size)
	d.idle = make(chan *ldap.Conn, size)
	if cfg.TLSConfig != nil {
		d.tlsConfig = cfg.TLSConfig.Clone()
	} else {
		d.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if d.tlsConfig.ServerName == "" {
		d.tlsConfig.ServerName = u.Hostname()
	}
	return d, nil
}

// splitFilter checks that filter holds the placeholder once and is a valid
// filter with a value in its place, and returns what comes before and after
// the placeholder.
func splitFilter(filter string) (before, after string, err error) {
	if n := strings.Count(filter, AccountPlaceholder); n != 1 {
		return "", "", fmt.Errorf("must contain %s exactly once (it has it %d times)", AccountPlaceholder, n)
	}
	before, after, _ = strings.Cut(filter, AccountPlaceholder)
	if _, err := ldap.CompileFilter(before + "x" + after); err != nil {
		return "", "", fmt.Errorf("is not an LDAP filter: %w", err)
	}
	return before, after, nil
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

// Filter returns the search filter for account: the configured filter with
// the account, escaped per RFC 4515, in place of {account}. Every byte a
// filter gives a meaning to (parentheses, '*', '\', NUL) and every byte
// beyond ASCII becomes \XX, so the account can only be a value to match.
func (d *LDAP) Filter(account string) string {
	return d.before + ldap.EscapeFilter(account) + d.after
}

// Lookup searches the directory for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount when no entry matches, when the entry has no
// phone number and, without asking, for a name the rule refuses; and an
// error matching recovery.ErrUnavailable when the server cannot tell.
func (d *LDAP) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return recovery.Entry{}, ldapUnavailable(fmt.Errorf("waiting for a connection: %w", ctx.Err()))
	}
	defer func() { <-d.slots }()

	// A pooled connection may have broken since it was last used (the
	// server restarted, an idle timeout): then the search fails at once
	// and is tried again, once, on a new connection.
	for attempt := 0; ; attempt++ {
		conn, reused, err := d.conn(ctx)
		if err != nil {
			return recovery.Entry{}, ldapUnavailable(err)
		}
		res, err := d.search(ctx, conn, account)
		if err != nil && isConnError(err) {
			conn.Close()
			if reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return recovery.Entry{}, ldapUnavailable(err)
		}
		d.put(conn)
		if err != nil {
			return recovery.Entry{}, err
		}
		return d.entry(res)
	}
}

// conn returns an idle connection, or a new bound one. A slot is held.
func (d *LDAP) conn(ctx context.Context) (c *ldap.Conn, reused bool, err error) {
	for {
		select {
		case c := <-d.idle:
			if c.IsClosing() { // the server closed it while it was idle
				c.Close()
				continue
			}
			return c, true, nil
		default:
		}
		c, err := d.dial(ctx)
		return c, false, err
	}
}

// dial connects, upgrades with StartTLS if configured, and binds, all
// within ctx's deadline.
func (d *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	if d.isClosed() {
		return nil, errors.New("directory closed")
	}
	deadline, _ := ctx.Deadline()
	dialer := &net.Dialer{Deadline: deadline}
	c, err := ldap.DialURL(d.url, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tlsConfig))
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", cleanError(err))
	}
	c.SetTimeout(time.Until(deadline))
	if d.startTLS {
		if err := c.StartTLS(d.tlsConfig); err != nil {
			c.Close()
			return nil, fmt.Errorf("starting TLS: %w", cleanError(err))
		}
	}
	if d.bindDN != "" {
		if err := c.Bind(d.bindDN, d.bindPW); err != nil {
			c.Close()
			return nil, fmt.Errorf("binding as %q: %w", d.bindDN, cleanError(err))
		}
	}
	return c, nil
}

// search runs the subtree search for account. Its errors are connection
// errors (isConnError) or errors matching recovery.ErrUnavailable.
func (d *LDAP) search(ctx context.Context, c *ldap.Conn, account string) (*ldap.SearchResult, error) {
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline)
	if left <= 0 {
		return nil, ldap.NewError(ldap.ErrorNetwork, context.DeadlineExceeded)
	}
	c.SetTimeout(left)
	req := ldap.NewSearchRequest(d.baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, // one entry is the answer; a second makes it ambiguous
		int(math.Ceil(left.Seconds())), false,
		d.Filter(account), d.attributes, nil)
	res, err := c.Search(req)
	if err == nil {
		return res, nil
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, ldapUnavailable(errors.New("more than one entry matches the account; refusing an ambiguous answer"))
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		// The base DN is gone: a directory misconfigured, not an
		// account unknown.
		return nil, ldapUnavailable(fmt.Errorf("searching: base_dn %q does not exist", d.baseDN))
	}
	if isConnError(err) {
		return nil, err
	}
	return nil, ldapUnavailable(fmt.Errorf("searching: %w", cleanError(err)))
}

// entry reads the answer of a search.
func (d *LDAP) entry(res *ldap.SearchResult) (recovery.Entry, error) {
	switch len(res.Entries) {
	case 0:
		return recovery.Entry{}, recovery.ErrUnknownAccount
	case 1:
	default:
		return recovery.Entry{}, ldapUnavailable(errors.New("more than one entry matches the account; refusing an ambiguous answer"))
	}
	e := res.Entries[0]
	var entry recovery.Entry
	// The first value that is not blank: an inetOrgPerson may list more
	// than one mobile, each of them the person's own.
	for _, v := range e.GetEqualFoldAttributeValues(d.phoneAttr) {
		if v = strings.TrimSpace(v); v != "" {
			entry.Phone = v
			break
		}
	}
	if entry.Phone == "" {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	if d.langAttr != "" {
		// preferredLanguage has the syntax of Accept-Language (RFC 2798
		// §2.7): the first range is the one preferred.
		lang := e.GetEqualFoldAttributeValue(d.langAttr)
		lang, _, _ = strings.Cut(lang, ",")
		lang, _, _ = strings.Cut(lang, ";")
		entry.Lang = strings.TrimSpace(lang)
	}
	return entry, nil
}

// put returns a connection to the pool, or closes it if the pool is full or
// closed.
func (d *LDAP) put(c *ldap.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || c.IsClosing() {
		c.Close()
		return
	}
	select {
	case d.idle <- c:
	default:
		c.Close()
	}
}

func (d *LDAP) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close closes the idle connections; those in use are closed when their
// lookup ends. Lookups after Close fail.
func (d *LDAP) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for {
		select {
		case c := <-d.idle:
			c.Close()
		default:
			return nil
		}
	}
}

// isConnError reports whether err means the connection is unusable: it
// broke, or a request on it timed out (the server may be stuck, and a late
// answer would only hold up the connection). go-ldap reports both as
// ErrorNetwork.
func isConnError(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError,
		ldap.LDAPResultTimeout)
}

// cleanError keeps of an LDAP result its code and name, and drops the
// server's diagnostic message, which is free text that some servers fill
// with the request (a filter holds the account). Other errors (network)
// pass unchanged.
func cleanError(err error) error {
	var lerr *ldap.Error
	if errors.As(err, &lerr) && lerr.ResultCode < ldap.ErrorNetwork {
		return fmt.Errorf("LDAP result %d %s", lerr.ResultCode, ldap.LDAPResultCodeMap[lerr.ResultCode])
	}
	return err
}

func ldapUnavailable(err error) error {
	return fmt.Errorf("directory ldap: %w: %w", recovery.ErrUnavailable, err)
}

// Interface guards
var _ recovery.Directory = (*LDAP)(nil)
