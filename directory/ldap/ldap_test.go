package ldapdirectory

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/directorytest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// ldapFor returns the settings of a directory on srv.
func ldapFor(srv *ldaptest.Server) *LDAP {
	return &LDAP{
		URL:           srv.URL,
		BindDN:        ldaptest.BindDN,
		BindPassword:  ldaptest.BindPassword,
		BaseDN:        ldaptest.BaseDN,
		Filter:        "(&(objectClass=inetOrgPerson)(mail={account}))",
		LangAttribute: "preferredLanguage",
		Timeout:       caddy.Duration(2 * time.Second),
	}
}

// newLDAP readies l as the gateway does.
func newLDAP(t *testing.T, l *LDAP) *LDAP {
	t.Helper()
	if err := directorytest.Provision(t, l, nil); err != nil {
		t.Fatal(err)
	}
	return l
}

// noSecrets fails t if err's text holds any of the secrets.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds %q", err, s)
		}
	}
}

func TestLDAPLookup(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	d := newLDAP(t, ldapFor(srv))
	tests := []struct {
		name    string
		account string
		want    recovery.Entry
		wantErr error
	}{
		{"found", "alice@example.com", recovery.Entry{Phone: "+31612345678", Lang: "nl"}, nil},
		{"normalised first", "  ALICE@Example.COM ", recovery.Entry{Phone: "+31612345678", Lang: "nl"}, nil},
		{"first preferred language", "bob@example.com", recovery.Entry{Phone: "+4915123456789", Lang: "de-CH"}, nil},
		{"unknown", "nobody@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
		{"no mobile", "carol@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
		{"refused by the account rule", "al\u200bice@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
		// The specials of a filter, escaped, match themselves and
		// nothing more.
		{"specials match literally", "o(d)d*@example.com", recovery.Entry{Phone: "+31633333333"}, nil},
		{"two entries", "shared@example.com", recovery.Entry{}, recovery.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Lookup(context.Background(), tt.account)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v, %v", tt.account, got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				noSecrets(t, err, tt.account, ldaptest.BindPassword, "+316")
			}
		})
	}
}

// TestLDAPInjection sends filter syntax as the account. Each is either
// refused by the account rule or escaped into a value that no entry has:
// none may find alice, admin or anyone else, nor make the search
// ambiguous (which would mean it matched several entries).
func TestLDAPInjection(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	d := newLDAP(t, ldapFor(srv))
	accounts := []string{
		"*",
		"*)(uid=*",
		"*)(|(mail=*",
		"admin)(|(mail=*",
		"admin@example.com)(|(mail=*)",
		"alice@example.com)(uid=*",
		"*@example.com",
		"a*",
		`\2a`,
		`\00`,
		`alice@example.com\00`,
		"alice@example.com\x00",
		"\x00",
		"(",
		")",
		"()",
		"(mail=*)",
		"admin*",
		strings.Repeat("*", 10_000),
		strings.Repeat("a", 10_000),
		strings.Repeat(")(", 5_000),
	}
	for _, account := range accounts {
		got, err := d.Lookup(context.Background(), account)
		if !errors.Is(err, recovery.ErrUnknownAccount) {
			t.Errorf("Lookup(%.40q) = %+v, %v; want ErrUnknownAccount", account, got, err)
		}
	}
	// The filter sent for the names the account rule lets through.
	for account, want := range map[string]string{
		"*)(uid=*":        `(&(objectClass=inetOrgPerson)(mail=\2a\29\28uid=\2a))`,
		"admin)(|(mail=*": `(&(objectClass=inetOrgPerson)(mail=admin\29\28|\28mail=\2a))`,
		`\00`:             `(&(objectClass=inetOrgPerson)(mail=\5c00))`,
		"a\x00b":          `(&(objectClass=inetOrgPerson)(mail=a\00b))`,
		"é":               `(&(objectClass=inetOrgPerson)(mail=\c3\a9))`,
	} {
		if got := d.filter(account); got != want {
			t.Errorf("Filter(%q) = %s, want %s", account, got, want)
		}
	}
}

func TestLDAPStartTLSAndLDAPS(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	for _, tt := range []struct {
		name     string
		url      string
		startTLS bool
	}{
		{"starttls", srv.URL, true},
		{"ldaps", srv.TLSURL, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trusting := ldapFor(srv)
			trusting.URL, trusting.StartTLS, trusting.tlsConfig = tt.url, tt.startTLS, srv.TLSConfig()
			got, err := newLDAP(t, trusting).Lookup(context.Background(), "alice@example.com")
			if err != nil || got.Phone != "+31612345678" {
				t.Fatalf("Lookup = %+v, %v", got, err)
			}
			// Without trusting the server's certificate, no lookup.
			untrusting := ldapFor(srv)
			untrusting.URL, untrusting.StartTLS = tt.url, tt.startTLS
			_, err = newLDAP(t, untrusting).Lookup(context.Background(), "alice@example.com")
			if !errors.Is(err, recovery.ErrUnavailable) {
				t.Fatalf("Lookup with an untrusted certificate = %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestLDAPBindFailure(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	cfg := ldapFor(srv)
	cfg.BindPassword = "wrong-Pa55word"
	_, err := newLDAP(t, cfg).Lookup(context.Background(), "alice@example.com")
	if !errors.Is(err, recovery.ErrUnavailable) || errors.Is(err, recovery.ErrUnknownAccount) {
		t.Fatalf("Lookup with a wrong password = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "Invalid Credentials") {
		t.Errorf("error %q does not say why", err)
	}
	noSecrets(t, err, cfg.BindPassword, ldaptest.BindPassword, "alice")

	// A wrong base DN is a misconfiguration, not an unknown account.
	cfg = ldapFor(srv)
	cfg.BaseDN = "ou=nobody,dc=example,dc=com"
	if _, err := newLDAP(t, cfg).Lookup(context.Background(), "alice@example.com"); !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("Lookup under a missing base DN = %v, want ErrUnavailable", err)
	}
}

// TestLDAPOutageAndReconnect kills the server under a pool of bound
// connections: lookups fail fast (the timeout bounds them) and, once the
// server is back on the same port with the same data, work again through
// the same directory, whose broken connections are redialled.
func TestLDAPOutageAndReconnect(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	cfg := ldapFor(srv)
	cfg.PoolSize = 3
	d := newLDAP(t, cfg)
	lookupAll := func() []error {
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = d.Lookup(context.Background(), "alice@example.com")
			}()
		}
		wg.Wait()
		return errs
	}
	for _, err := range lookupAll() { // fills the pool
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.idle); n == 0 {
		t.Fatal("no connection kept for reuse")
	}

	srv.Stop()
	began := time.Now()
	for _, err := range lookupAll() {
		if !errors.Is(err, recovery.ErrUnavailable) {
			t.Fatalf("Lookup with the server down = %v, want ErrUnavailable", err)
		}
		noSecrets(t, err, ldaptest.BindPassword, "alice")
	}
	if took := time.Since(began); took > time.Duration(cfg.Timeout) {
		t.Errorf("lookups with the server down took %s, more than the %s timeout", took, time.Duration(cfg.Timeout))
	}

	srv.Restart()
	for _, err := range lookupAll() {
		if err != nil {
			t.Fatalf("Lookup after the server came back = %v", err)
		}
	}
}

// TestLDAPStaleConnection restarts the server between two lookups: the
// pooled connection is dead, and the lookup redials instead of failing.
func TestLDAPStaleConnection(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	d := newLDAP(t, ldapFor(srv))
	if _, err := d.Lookup(context.Background(), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Restart()
	if got, err := d.Lookup(context.Background(), "alice@example.com"); err != nil || got.Phone != "+31612345678" {
		t.Fatalf("Lookup after a restart = %+v, %v", got, err)
	}
}

// TestLDAPTimeout talks to a server that accepts connections and never
// answers: the lookup gives up after the timeout.
func TestLDAPTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	d := newLDAP(t, &LDAP{
		URL: "ldap://" + ln.Addr().String(), BindDN: "cn=x,dc=example,dc=com", BindPassword: "pw",
		BaseDN: "dc=example,dc=com", Filter: "(mail={account})", Timeout: caddy.Duration(300 * time.Millisecond),
	})
	began := time.Now()
	_, err = d.Lookup(context.Background(), "alice@example.com")
	if !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("Lookup = %v, want ErrUnavailable", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Lookup took %s with a 300ms timeout", took)
	}
}

func TestLDAPClose(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	d := newLDAP(t, ldapFor(srv))
	if _, err := d.Lookup(context.Background(), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := d.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if len(d.idle) != 0 {
		t.Error("Cleanup left idle connections")
	}
	if _, err := d.Lookup(context.Background(), "alice@example.com"); !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("Lookup after Cleanup = %v, want ErrUnavailable", err)
	}
}

func TestLDAPRefuses(t *testing.T) {
	t.Parallel()
	good := func() *LDAP {
		return &LDAP{URL: "ldap://ldap.example.com", BindDN: "cn=gw,dc=example,dc=com", BindPassword: "pw-s3cret",
			BaseDN: "dc=example,dc=com", Filter: "(mail={account})"}
	}
	tests := []struct {
		name string
		edit func(*LDAP)
		want string
	}{
		{"http url", func(c *LDAP) { c.URL = "http://ldap.example.com" }, "not ldap:// or ldaps://"},
		{"no host", func(c *LDAP) { c.URL = "ldap://" }, "no host"},
		{"credentials in url", func(c *LDAP) { c.URL = "ldap://u:pw-s3cret@ldap.example.com" }, "credentials"},
		{"rfc 4516 parts", func(c *LDAP) { c.URL = "ldap://ldap.example.com/dc=example,dc=com?mobile" }, "more than scheme"},
		{"starttls on ldaps", func(c *LDAP) { c.URL, c.StartTLS = "ldaps://ldap.example.com", true }, "start_tls"},
		{"bind dn without password", func(c *LDAP) { c.BindPassword = "" }, "unauthenticated bind"},
		{"password without bind dn", func(c *LDAP) { c.BindDN = "" }, "without bind_dn"},
		{"no base dn", func(c *LDAP) { c.BaseDN = "" }, "base_dn is required"},
		{"bad base dn", func(c *LDAP) { c.BaseDN = "example" }, "not a DN"},
		{"no placeholder", func(c *LDAP) { c.Filter = "(mail=alice)" }, "exactly once"},
		{"two placeholders", func(c *LDAP) { c.Filter = "(|(mail={account})(uid={account}))" }, "exactly once"},
		{"not a filter", func(c *LDAP) { c.Filter = "mail={account}" }, "not an LDAP filter"},
		{"unbalanced", func(c *LDAP) { c.Filter = "(&(mail={account})" }, "not an LDAP filter"},
		{"bad attribute", func(c *LDAP) { c.PhoneAttribute = "mobile)(x" }, "not an attribute name"},
		{"negative timeout", func(c *LDAP) { c.Timeout = caddy.Duration(-time.Second) }, "negative timeout"},
		{"negative pool", func(c *LDAP) { c.PoolSize = -1 }, "negative pool_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := good()
			tt.edit(l)
			err := directorytest.Provision(t, l, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Provision error = %v, want one containing %q", err, tt.want)
			}
			noSecrets(t, err, "pw-s3cret")
		})
	}
	d := newLDAP(t, good())
	if d.PhoneAttribute != "mobile" || time.Duration(d.Timeout) != 3*time.Second || cap(d.slots) != 4 {
		t.Errorf("defaults: phone attribute %q, timeout %s, pool %d", d.PhoneAttribute, time.Duration(d.Timeout), cap(d.slots))
	}
}

// TestLDAPEmailAttribute reads an alternate address from the attribute
// named; the seed data's only address attribute is mail, which stands in.
func TestLDAPEmailAttribute(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	l := ldapFor(srv)
	l.EmailAttribute = "mail"
	d := newLDAP(t, l)
	got, err := d.Lookup(context.Background(), "bob@example.com")
	want := recovery.Entry{Phone: "+4915123456789", Lang: "de-CH", Email: "bob@example.com"}
	if err != nil || got != want {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, err, want)
	}
}
