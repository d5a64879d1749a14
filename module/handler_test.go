package module

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// validHandler returns a configuration that loads.
func validHandler() *Handler {
	return &Handler{
		PublicURL: "https://mail.example.com",
		Directory: &Directory{File: "phones.json"},
		Forward:   &Forward{KeyID: "gw1", HMACKey: strings.Repeat("AAAA", 22)},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Handler)
		want   string // part of the error; "" for none
	}{
		{"defaults", func(*Handler) {}, ""},
		{"short code", func(h *Handler) { h.CodeLength = 4 }, "code_length: 4 is outside 6..10"},
		{"long code", func(h *Handler) { h.CodeLength = 11 }, "code_length: 11"},
		{"negative ttl", func(h *Handler) { h.CodeTTL = caddy.Duration(-1) }, "code_ttl:"},
		{"day-long code", func(h *Handler) { h.CodeTTL = caddy.Duration(24 * 3600e9) }, "code_ttl:"},
		{"no attempts", func(h *Handler) { h.MaxAttempts = -1 }, "max_attempts:"},
		{"prefix without slash", func(h *Handler) { h.PathPrefix = "recovery" }, "path_prefix:"},
		{"prefix with trailing slash", func(h *Handler) { h.PathPrefix = "/recovery/" }, "path_prefix:"},
		{"no directory", func(h *Handler) { h.Directory = nil }, "directory: required"},
		{"two directories", func(h *Handler) { h.Directory.URL = "https://dir" }, "directory: give exactly one"},
		{"ldap directory", func(h *Handler) { h.Directory = &Directory{LDAP: testLDAP()} }, ""},
		{"ldap and file", func(h *Handler) { h.Directory.LDAP = testLDAP() }, "directory: give exactly one of file, http, ldap or sql"},
		{"ldap over http", func(h *Handler) {
			h.Directory = &Directory{LDAP: testLDAP()}
			h.Directory.LDAP.URL = "http://ldap.example.com"
		}, `directory ldap: url "http://ldap.example.com" must start with ldap:// or ldaps://`},
		{"ldap url with a password", func(h *Handler) {
			h.Directory = &Directory{LDAP: testLDAP()}
			h.Directory.LDAP.URL = "https://u:s3cret@ldap.example.com"
		}, `directory ldap: url "https://u:xxxxx@ldap.example.com"`},
		{"ldap without base_dn", func(h *Handler) {
			h.Directory = &Directory{LDAP: testLDAP()}
			h.Directory.LDAP.BaseDN = ""
		}, "directory ldap: base_dn is required"},
		{"ldap filter without account", func(h *Handler) {
			h.Directory = &Directory{LDAP: testLDAP()}
			h.Directory.LDAP.Filter = "(mail=alice)"
		}, `directory ldap: filter "(mail=alice)" must contain {account} exactly once`},
		{"ldap bind_dn without password", func(h *Handler) {
			h.Directory = &Directory{LDAP: testLDAP()}
			h.Directory.LDAP.BindPassword = ""
		}, "directory ldap: bind_password is required with bind_dn"},
		{"messagebird without key", func(h *Handler) {
			h.SMS = &SMS{MessageBird: &MessageBird{Originator: "Mail"}}
		}, "access_key is required"},
		{"unknown limit", func(h *Handler) { h.Limits = map[string]Limit{"start_planet": {Events: 1, Window: 1}} }, `limit: unknown scope "start_planet"`},
		{"redis without secret", func(h *Handler) { h.Storage = &Storage{Redis: &RedisStorage{URL: "redis://127.0.0.1:6379"}} }, "secret: required with redis storage"},
		{"short secret", func(h *Handler) { h.Secrets = []string{"c2hvcnQ="} }, "secret: value 1"},
		{"no forward", func(h *Handler) { h.Forward = nil }, "forward: required"},
		{"two forward keys", func(h *Handler) { h.Forward.Ed25519Key = "key.pem" }, "forward: give exactly one"},
		{"relative forward path", func(h *Handler) { h.Forward.Path = "api" }, "forward: path"},
		{"no public_url", func(h *Handler) { h.PublicURL = "" }, "public_url: required: the site address names no single host"},
		{"public_url over http", func(h *Handler) { h.PublicURL = "http://localhost:8080" }, ""},
		{"public_url with a path", func(h *Handler) { h.PublicURL = "https://example.com/mail/" }, ""},
		{"public_url without a scheme", func(h *Handler) { h.PublicURL = "mail.example.com" }, `public_url: "mail.example.com" must be an http or https URL`},
		{"public_url of another scheme", func(h *Handler) { h.PublicURL = "javascript://mail.example.com" }, "must be an http or https URL"},
		{"public_url without a host", func(h *Handler) { h.PublicURL = "https:///recovery" }, "must name a host"},
		{"public_url with a wildcard", func(h *Handler) { h.PublicURL = "https://*.example.com" }, "must name a host"},
		{"public_url with a user", func(h *Handler) { h.PublicURL = "https://mail.example.com@evil.example" }, "must not hold a user"},
		{"public_url with a query", func(h *Handler) { h.PublicURL = "https://mail.example.com/?a=b" }, "must not hold a query or a fragment"},
		{"public_url with an empty query", func(h *Handler) { h.PublicURL = "https://mail.example.com?" }, "must not hold a query or a fragment"},
		{"public_url with a fragment", func(h *Handler) { h.PublicURL = "https://mail.example.com#x" }, "must not hold a query or a fragment"},
		{"public_url with a bad port", func(h *Handler) { h.PublicURL = "https://mail.example.com:evil" }, "public_url:"},
		{"forward fields", func(h *Handler) { h.Forward.Fields = []string{"password", "lang"} }, ""},
		{"empty forward field", func(h *Handler) { h.Forward.Fields = []string{"password", ""} }, "forward: fields: name 2 is empty"},
		{"repeated forward field", func(h *Handler) { h.Forward.Fields = []string{"password", "password"} }, `forward: fields: "password" is named twice`},
		{"reset token as a forward field", func(h *Handler) { h.Forward.Fields = []string{"reset_token"} }, `forward: fields: "reset_token" never reaches the upstream`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := validHandler()
			c.mutate(h)
			h.fillDefaults()
			err := h.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDefaultsAreSafe(t *testing.T) {
	t.Parallel()
	h := validHandler()
	h.fillDefaults()
	if h.CodeLength != 6 || h.CodeTTL != caddy.Duration(defaultCodeTTL) || h.MaxAttempts != 5 ||
		h.ResendInterval != caddy.Duration(defaultResendInterval) || h.TokenTTL != caddy.Duration(defaultTokenTTL) {
		t.Errorf("defaults: %+v", h)
	}
	if h.Storage.Memory == nil || h.SMS.Outbox == "" || !*h.NotifyOnReset || h.PathPrefix != "/recovery" {
		t.Errorf("defaults: storage %+v sms %+v", h.Storage, h.SMS)
	}
	l := h.limits()
	if l.StartIP.Events != 10 || l.StartAccount.Events != 3 || l.StartPhone.Events != 3 ||
		l.VerifyIP.Events != 50 || l.SMSGlobal.Events != 1000 || l.Lockout.Failures != 5 || l.IPBlock.Failures != 20 {
		t.Errorf("limits are not on by default: %+v", l)
	}
}

func TestPlaceholdersInSecrets(t *testing.T) {
	t.Setenv("SMSREC_TEST_KEY", "live_abc")
	t.Setenv("SMSREC_TEST_SECRET", strings.Repeat("QUFB", 11))
	h := validHandler()
	h.SMS = &SMS{MessageBird: &MessageBird{AccessKey: "{env.SMSREC_TEST_KEY}", Originator: "Mail"}}
	h.Secrets = []string{"{env.SMSREC_TEST_SECRET}"}
	h.fillDefaults()
	h.expandPlaceholders()
	if h.SMS.MessageBird.AccessKey != "live_abc" || h.Secrets[0] != strings.Repeat("QUFB", 11) {
		t.Fatalf("placeholders not expanded: %q %q", h.SMS.MessageBird.AccessKey, h.Secrets[0])
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}

func testLDAP() *LDAPDirectory {
	return &LDAPDirectory{URL: "ldaps://ldap.example.com", BindDN: "cn=gw,dc=example,dc=com", BindPassword: "pw",
		BaseDN: "ou=people,dc=example,dc=com", Filter: "(mail={account})"}
}
