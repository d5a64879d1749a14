// Package ldapconn is what the LDAP directory (directory/ldap) and the LDAP
// password writer (verify/ldap) share: the checks of a server's URL and
// bind, a connection dialled, upgraded to TLS and bound within a deadline,
// a search filter with the account put in escaped, and errors that keep
// none of the server's free text.
//
// It must never log, and its errors must never hold a password nor the
// server's diagnostic message.
package ldapconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// AccountPlaceholder is what a filter holds, exactly once, where the
// account goes.
const AccountPlaceholder = "{account}"

// Server is where to connect and whom to bind as.
type Server struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection before the bind.
	StartTLS bool
	// BindDN and BindPassword are the simple bind; none is anonymous.
	BindDN       string
	BindPassword string
	// TLS is for ldaps:// and StartTLS.
	TLS *tls.Config
}

// TLSConfig is the TLS configuration for rawURL when none is given: the
// system's roots, TLS 1.2 or later, the URL's host as the server name.
func TLSConfig(rawURL string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if u, err := url.Parse(rawURL); err == nil {
		c.ServerName = u.Hostname()
	}
	return c
}

// Check checks the URL, StartTLS and the bind. Its errors name the options
// as the Caddyfile does and never hold the password, in the URL or not.
func (s Server) Check() error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return errors.New("url does not parse") // the error would quote a password in it
	}
	switch {
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		return fmt.Errorf("url %q is not ldap:// or ldaps://", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("url %q has no host", u.Redacted())
	case u.User != nil:
		return fmt.Errorf("url %q holds credentials (use bind_dn and bind_password)", u.Redacted())
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		// An RFC 4516 URL can carry a base DN, attributes and a filter;
		// they are options here, and two places to say one thing is one
		// too many.
		return fmt.Errorf("url %q has more than scheme, host and port (use base_dn and filter)", u.Redacted())
	case s.StartTLS && u.Scheme == "ldaps":
		return errors.New("start_tls with an ldaps:// url (the connection is TLS already)")
	case s.BindDN != "" && s.BindPassword == "":
		return errors.New("bind_dn without bind_password (an unauthenticated bind)")
	case s.BindDN == "" && s.BindPassword != "":
		return errors.New("bind_password without bind_dn")
	}
	return nil
}

// Dial connects, upgrades with StartTLS if asked, and binds, all before
// ctx's deadline, which it must have; the connection's requests time out
// at that deadline too.
func Dial(ctx context.Context, s Server) (*ldap.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("connecting: no deadline")
	}
	dialer := &net.Dialer{Deadline: deadline}
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(s.TLS))
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", CleanError(err))
	}
	c.SetTimeout(time.Until(deadline))
	if s.StartTLS {
		if err := c.StartTLS(s.TLS); err != nil {
			c.Close()
			return nil, fmt.Errorf("starting TLS: %w", CleanError(err))
		}
	}
	if s.BindDN != "" {
		if err := c.Bind(s.BindDN, s.BindPassword); err != nil {
			c.Close()
			return nil, fmt.Errorf("binding as %q: %w", s.BindDN, CleanError(err))
		}
	}
	return c, nil
}

// Filter is a search filter with AccountPlaceholder in it.
type Filter struct {
	text          string
	before, after string
}

// NewFilter splits text at its placeholder; Check says whether it is a
// filter.
func NewFilter(text string) Filter {
	before, after, _ := strings.Cut(text, AccountPlaceholder)
	return Filter{text: text, before: before, after: after}
}

// Check returns an error when the filter lacks the placeholder, has it
// more than once, or is not an LDAP filter.
func (f Filter) Check() error {
	if n := strings.Count(f.text, AccountPlaceholder); n != 1 {
		return fmt.Errorf("filter %q must contain %s exactly once (it has it %d times)", f.text, AccountPlaceholder, n)
	}
	if _, err := ldap.CompileFilter(f.For("x")); err != nil {
		return fmt.Errorf("filter %q is not an LDAP filter: %w", f.text, err)
	}
	return nil
}

// For returns the filter with account, escaped per RFC 4515, in place of
// the placeholder. Every byte a filter gives a meaning to (parentheses,
// '*', '\', NUL) and every byte beyond ASCII becomes \XX, so the account
// can only be a value to match.
func (f Filter) For(account string) string {
	return f.before + ldap.EscapeFilter(account) + f.after
}

// IsConnError reports whether err means the connection is unusable: it
// broke, or a request on it timed out (the server may be stuck, and a late
// answer would only hold up the connection). go-ldap reports both as
// ErrorNetwork.
func IsConnError(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError,
		ldap.LDAPResultTimeout)
}

// CleanError keeps of an LDAP result its code and name, and drops the
// server's diagnostic message, which is free text that some servers fill
// with the request (a filter holds the account). Other errors (network)
// pass unchanged.
func CleanError(err error) error {
	var lerr *ldap.Error
	if errors.As(err, &lerr) && lerr.ResultCode < ldap.ErrorNetwork {
		return fmt.Errorf("LDAP result %d %s", lerr.ResultCode, ldap.LDAPResultCodeMap[lerr.ResultCode])
	}
	return err
}

// RedactURL hides a password written into a URL, for error messages.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}
