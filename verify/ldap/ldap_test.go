package ldapwriter

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

const newPassword = "a long and new passphrase"

// writerFor returns the settings of a writer on srv that finds people by
// uid.
func writerFor(srv *ldaptest.Server, mode, scheme string) *Writer {
	return &Writer{
		URL:          srv.URL,
		BindDN:       ldaptest.WriterDN,
		BindPassword: ldaptest.WriterPassword,
		BaseDN:       ldaptest.BaseDN,
		Filter:       "(&(objectClass=inetOrgPerson)(uid={account}))",
		Mode:         mode,
		Scheme:       scheme,
		Timeout:      caddy.Duration(5 * time.Second),
	}
}

// ready provisions and validates w as the verifier's load does.
func ready(t *testing.T, w *Writer) *Writer {
	t.Helper()
	if err := provision(w); err != nil {
		t.Fatal(err)
	}
	return w
}

func provision(w *Writer) error {
	if err := w.Provision(caddy.Context{}); err != nil {
		return err
	}
	return w.Validate()
}

// fast is the scheme of tests where the hash does not matter: SSHA512 for
// replace, as bcrypt's cost takes seconds under the race detector.
func fast(mode string) string {
	if mode == ModeReplace {
		return "SSHA512"
	}
	return ""
}

func personDN(uid string) string { return "uid=" + uid + "," + ldaptest.BaseDN }

// noSecrets fails t if err's text holds any of the secrets.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds %q", err, s)
		}
	}
}

// unchanged fails t if any entry's userPassword differs from before, but
// for those of except.
func unchanged(t *testing.T, before, after map[string][]string, except ...string) {
	t.Helper()
	for dn, was := range before {
		if slices.Contains(except, dn) {
			continue
		}
		if !slices.Equal(was, after[dn]) {
			t.Errorf("%s's userPassword changed: %q, was %q", dn, after[dn], was)
		}
	}
	if len(after) != len(before) {
		t.Errorf("entries: %v, were %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
	}
}

func TestSetPassword(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	for _, tt := range []struct {
		mode, scheme string
		uid          string
		stored       string // the prefix of the userPassword value
	}{
		{ModePasswdModify, "", "alice", "{SSHA}"}, // slapd's default olcPasswordHash
		{ModeReplace, "BLF-CRYPT", "bob", "{CRYPT}$2b$12$"},
		{ModeReplace, "SSHA512", "carol", "{SSHA512}"},
		{ModeReplace, "SHA512-CRYPT", "dave", "{CRYPT}$6$rounds=500000$"},
	} {
		t.Run(tt.mode+" "+tt.scheme, func(t *testing.T) {
			if tt.scheme == "SSHA512" && !srv.SHA2 {
				testenv.Missing(t, "OpenLDAP's pw-sha2 module, for binds with {SSHA512} passwords", "apt-get install slapd-contrib", nil)
			}
			before := srv.Passwords(t)
			w := ready(t, writerFor(srv, tt.mode, tt.scheme))
			if err := w.SetPassword(t.Context(), tt.uid, newPassword); err != nil {
				t.Fatal(err)
			}
			after := srv.Passwords(t)
			dn := personDN(tt.uid)
			unchanged(t, before, after, dn)
			if got := after[dn]; len(got) != 1 || !strings.HasPrefix(got[0], tt.stored) {
				t.Errorf("userPassword = %q, want one value starting %s", got, tt.stored)
			}
			if !srv.CanBind(t, dn, newPassword) {
				t.Error("slapd refuses a bind with the new password")
			}
			if srv.CanBind(t, dn, ldaptest.OldPassword(tt.uid)) {
				t.Error("slapd still takes the old password")
			}
		})
	}
}

// TestFilterMetacharacters: an account is only ever a value in the
// filter, so that no name reaches another person's entry, let alone
// several at once.
func TestFilterMetacharacters(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	for _, mode := range []string{ModePasswdModify, ModeReplace} {
		w := ready(t, writerFor(srv, mode, fast(mode)))
		for _, account := range []string{
			"*",
			"*)(uid=*",
			"alice)(uid=bob",
			"*)(|(uid=*",
			"alice*",
			"a*e",
			"admin*",
			`\2a`,
			`alice\29`,
			"alice\x00",
			"(uid=alice)",
			"*))(|(objectClass=*",
		} {
			err := w.SetPassword(t.Context(), account, newPassword)
			if !errors.Is(err, verify.ErrUnknownAccount) {
				t.Errorf("%s: SetPassword(%q) = %v, want ErrUnknownAccount", mode, account, err)
			}
		}
	}
	unchanged(t, before, srv.Passwords(t))

	// Escaped, the same characters match the one entry that has them.
	w := ready(t, writerFor(srv, ModeReplace, "BLF-CRYPT"))
	w.Filter = "(mail={account})"
	w = ready(t, w)
	if err := w.SetPassword(t.Context(), "o(d)d*@example.com", newPassword); err != nil {
		t.Fatalf("SetPassword(o(d)d*@example.com) = %v", err)
	}
	unchanged(t, before, srv.Passwords(t), personDN("odd"))
	if !srv.CanBind(t, personDN("odd"), newPassword) {
		t.Error("odd's new password does not bind")
	}
}

func TestAmbiguousAccountWritesNothing(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	for _, mode := range []string{ModePasswdModify, ModeReplace} {
		w := writerFor(srv, mode, fast(mode))
		w.Filter = "(mail={account})" // dup1 and dup2 share shared@example.com
		ready(t, w)
		err := w.SetPassword(t.Context(), "shared@example.com", newPassword)
		if err == nil || errors.Is(err, verify.ErrUnknownAccount) || !strings.Contains(err.Error(), "more than one entry") {
			t.Errorf("%s: SetPassword(shared@example.com) = %v, want the ambiguity", mode, err)
		}
	}
	unchanged(t, before, srv.Passwords(t))
}

func TestUnknownAccount(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	for _, mode := range []string{ModePasswdModify, ModeReplace} {
		w := ready(t, writerFor(srv, mode, fast(mode)))
		if err := w.SetPassword(t.Context(), "nobody", newPassword); !errors.Is(err, verify.ErrUnknownAccount) {
			t.Errorf("%s: SetPassword(nobody) = %v, want ErrUnknownAccount", mode, err)
		}
	}
	// A base DN that is gone is a broken configuration, not an unknown
	// account.
	w := writerFor(srv, ModeReplace, "SSHA512")
	w.BaseDN = "ou=gone,dc=example,dc=com"
	ready(t, w)
	if err := w.SetPassword(t.Context(), "alice", newPassword); err == nil || errors.Is(err, verify.ErrUnknownAccount) {
		t.Errorf("SetPassword under a missing base DN = %v, want an error that is not ErrUnknownAccount", err)
	}
	unchanged(t, before, srv.Passwords(t))
}

// TestServerDown: a server that does not answer is an error, not an
// unknown account, so that the verifier answers 5xx and the gateway keeps
// the reset token; once it is back, the same writer works.
func TestServerDown(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	w := ready(t, writerFor(srv, ModePasswdModify, ""))
	srv.Stop()
	err := w.SetPassword(t.Context(), "alice", newPassword)
	if err == nil || errors.Is(err, verify.ErrUnknownAccount) {
		t.Fatalf("SetPassword with slapd down = %v, want an error that is not ErrUnknownAccount", err)
	}
	noSecrets(t, err, newPassword, ldaptest.WriterPassword)
	srv.Restart()
	if srv.CanBind(t, personDN("alice"), newPassword) {
		t.Fatal("the new password was set while slapd was down")
	}
	if err := w.SetPassword(t.Context(), "alice", newPassword); err != nil {
		t.Fatalf("SetPassword once slapd is back = %v", err)
	}
	if !srv.CanBind(t, personDN("alice"), newPassword) {
		t.Error("the new password does not bind")
	}
}

// TestRefusedWrites: a bind that fails, or one that may not write, is an
// error that names neither password, and nothing is written.
func TestRefusedWrites(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	for _, mode := range []string{ModePasswdModify, ModeReplace} {
		wrong := writerFor(srv, mode, fast(mode))
		wrong.BindPassword = "not-the-s3cret"
		ready(t, wrong)
		err := wrong.SetPassword(t.Context(), "alice", newPassword)
		if err == nil || errors.Is(err, verify.ErrUnknownAccount) {
			t.Errorf("%s: a wrong bind password = %v, want an error", mode, err)
		} else {
			noSecrets(t, err, newPassword, "not-the-s3cret")
		}

		// The gateway's account may read, not write.
		reader := writerFor(srv, mode, fast(mode))
		reader.BindDN, reader.BindPassword = ldaptest.BindDN, ldaptest.BindPassword
		ready(t, reader)
		err = reader.SetPassword(t.Context(), "alice", newPassword)
		if err == nil || errors.Is(err, verify.ErrUnknownAccount) {
			t.Errorf("%s: a bind without write access = %v, want an error", mode, err)
		} else {
			noSecrets(t, err, newPassword, ldaptest.BindPassword)
		}
	}
	unchanged(t, before, srv.Passwords(t))
}

// TestEmptyPassword: Password Modify without a new password would have
// the server make one up; the writer sends none.
func TestEmptyPassword(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	w := ready(t, writerFor(srv, ModePasswdModify, ""))
	if err := w.SetPassword(t.Context(), "alice", ""); err == nil {
		t.Fatal("SetPassword with an empty password succeeded")
	}
	unchanged(t, before, srv.Passwords(t))
}

func TestPasswordTooLong(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	w := ready(t, writerFor(srv, ModeReplace, "BLF-CRYPT"))
	long := strings.Repeat("x", 73)
	if err := w.SetPassword(t.Context(), "alice", long); !errors.Is(err, verify.ErrPasswordTooLong) {
		t.Fatalf("SetPassword with 73 bytes in BLF-CRYPT = %v, want ErrPasswordTooLong", err)
	}
	unchanged(t, before, srv.Passwords(t))
}

func TestStartTLSAndLDAPS(t *testing.T) {
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
			untrusting := writerFor(srv, ModePasswdModify, "")
			untrusting.URL, untrusting.StartTLS = tt.url, tt.startTLS
			ready(t, untrusting)
			if err := untrusting.SetPassword(t.Context(), "bob", "untrusted "+newPassword); err == nil {
				t.Fatal("SetPassword over TLS with an untrusted certificate succeeded")
			}
			trusting := writerFor(srv, ModePasswdModify, "")
			trusting.URL, trusting.StartTLS, trusting.tlsConfig = tt.url, tt.startTLS, srv.TLSConfig()
			ready(t, trusting)
			if err := trusting.SetPassword(t.Context(), "bob", tt.name+" "+newPassword); err != nil {
				t.Fatal(err)
			}
			if !srv.CanBind(t, personDN("bob"), tt.name+" "+newPassword) {
				t.Error("the new password does not bind")
			}
		})
	}
}

// TestTimeout: a server that takes the connection but never answers is an
// error once the timeout is up, not a reset that hangs.
func TestTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
		}
	}()
	w := &Writer{URL: "ldap://" + ln.Addr().String(), BindDN: ldaptest.WriterDN, BindPassword: ldaptest.WriterPassword,
		BaseDN: ldaptest.BaseDN, Filter: "(uid={account})", Timeout: caddy.Duration(200 * time.Millisecond)}
	ready(t, w)
	if err := w.SetPassword(t.Context(), "alice", newPassword); err == nil || errors.Is(err, verify.ErrUnknownAccount) {
		t.Fatalf("SetPassword to a server that never answers = %v, want an error", err)
	}
}

// TestCancelledRequestWritesNothing: a reset whose request went away is
// not written, as the gateway does not count it done.
func TestCancelledRequestWritesNothing(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	before := srv.Passwords(t)
	w := ready(t, writerFor(srv, ModePasswdModify, ""))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.SetPassword(ctx, "alice", newPassword); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetPassword with a cancelled context = %v, want context.Canceled", err)
	}
	unchanged(t, before, srv.Passwords(t))
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	good := func() *Writer {
		return &Writer{URL: "ldaps://ldap.example.com", BindDN: "cn=w,dc=example,dc=com", BindPassword: "pw-s3cret",
			BaseDN: "dc=example,dc=com", Filter: "(uid={account})"}
	}
	for _, tt := range []struct {
		name string
		edit func(*Writer)
		want string
	}{
		{"http url", func(w *Writer) { w.URL = "http://ldap.example.com" }, "not ldap:// or ldaps://"},
		{"credentials in url", func(w *Writer) { w.URL = "ldap://u:pw-s3cret@ldap.example.com" }, "credentials"},
		{"rfc 4516 parts", func(w *Writer) { w.URL = "ldap://ldap.example.com/dc=example,dc=com" }, "more than scheme"},
		{"starttls on ldaps", func(w *Writer) { w.StartTLS = true }, "start_tls"},
		{"anonymous", func(w *Writer) { w.BindDN, w.BindPassword = "", "" }, "bind_dn is required"},
		{"bind dn without password", func(w *Writer) { w.BindPassword = "" }, "unauthenticated bind"},
		{"no base dn", func(w *Writer) { w.BaseDN = "" }, "base_dn is required"},
		{"bad base dn", func(w *Writer) { w.BaseDN = "example" }, "not a DN"},
		{"no placeholder", func(w *Writer) { w.Filter = "(uid=alice)" }, "exactly once"},
		{"two placeholders", func(w *Writer) { w.Filter = "(|(mail={account})(uid={account}))" }, "exactly once"},
		{"not a filter", func(w *Writer) { w.Filter = "uid={account}" }, "not an LDAP filter"},
		{"unknown mode", func(w *Writer) { w.Mode = "exop" }, `mode "exop"`},
		{"scheme with passwd_modify", func(w *Writer) { w.Scheme = "SSHA512" }, "is for mode replace"},
		{"argon2id", func(w *Writer) { w.Mode, w.Scheme = ModeReplace, "ARGON2ID" }, "both OpenLDAP and Dovecot"},
		{"unknown scheme", func(w *Writer) { w.Mode, w.Scheme = ModeReplace, "MD5" }, "not one of"},
		{"negative timeout", func(w *Writer) { w.Timeout = caddy.Duration(-time.Second) }, "negative timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := good()
			tt.edit(w)
			err := provision(w)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			noSecrets(t, err, "pw-s3cret")
		})
	}
	w := good()
	if err := provision(w); err != nil {
		t.Fatal(err)
	}
	if w.Mode != ModePasswdModify || w.Scheme != "" || time.Duration(w.Timeout) != 3*time.Second {
		t.Errorf("defaults: mode %q, scheme %q, timeout %s", w.Mode, w.Scheme, time.Duration(w.Timeout))
	}
	w = good()
	w.Mode = ModeReplace
	if err := provision(w); err != nil || w.Scheme != "BLF-CRYPT" {
		t.Errorf("replace: scheme %q, error %v; want BLF-CRYPT by default", w.Scheme, err)
	}
}

func TestCaddyfile(t *testing.T) {
	t.Parallel()
	var h verify.Handler
	if err := h.UnmarshalCaddyfile(cf.NewTestDispenser(`sms_recovery_verify {
		key_id gw1
		password ldap ldaps://ldap.example.com {
			bind_dn       cn=password-writer,dc=example,dc=com
			bind_password {env.LDAP_WRITER_PASSWORD}
			base_dn       ou=people,dc=example,dc=com
			filter        "(&(objectClass=inetOrgPerson)(uid={account}))"
			mode          replace
			scheme        SSHA512
			timeout       5s
		}
	}`)); err != nil {
		t.Fatal(err)
	}
	want := `{"base_dn":"ou=people,dc=example,dc=com","bind_dn":"cn=password-writer,dc=example,dc=com",` +
		`"bind_password":"{env.LDAP_WRITER_PASSWORD}","filter":"(\u0026(objectClass=inetOrgPerson)(uid={account}))",` +
		`"mode":"replace","scheme":"SSHA512","timeout":5000000000,"url":"ldaps://ldap.example.com","writer":"ldap"}`
	if string(h.WriterRaw) != want {
		t.Fatalf("write = %s\nwant    %s", h.WriterRaw, want)
	}
	for _, tt := range []struct{ block, want string }{
		{"ldap", "wrong argument count"},
		{"ldap https://ldap.example.com {\n bind_dn cn=w\n base_dn dc=x\n filter (uid={account})\n}", "must start with ldap://"},
		{"ldap ldap://h {\n base_dn dc=x\n filter (uid={account})\n}", "bind_dn is required"},
		{"ldap ldap://h {\n bind_dn cn=w\n filter (uid={account})\n}", "base_dn is required"},
		{"ldap ldap://h {\n bind_dn cn=w\n base_dn dc=x\n}", "filter is required"},
		{"ldap ldap://h {\n bind_dn cn=w\n base_dn dc=x\n filter (uid=alice)\n}", "exactly once"},
		{"ldap ldap://h {\n bind_dn cn=w\n bind_dn cn=v\n base_dn dc=x\n filter (uid={account})\n}", "bind_dn"},
		{"ldap ldap://h {\n bind_password s3cret-one s3cret-two\n}", "not shown"},
	} {
		var h verify.Handler
		err := h.UnmarshalCaddyfile(cf.NewTestDispenser("sms_recovery_verify {\n password " + tt.block + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.block, err, tt.want)
		} else {
			noSecrets(t, err, "s3cret-one", "s3cret-two")
		}
	}
}
