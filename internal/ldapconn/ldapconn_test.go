package ldapconn

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestFilterFor(t *testing.T) {
	t.Parallel()
	f := NewFilter("(&(objectClass=inetOrgPerson)(uid={account}))")
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	for account, want := range map[string]string{
		"alice":               `(&(objectClass=inetOrgPerson)(uid=alice))`,
		"*)(uid=*":            `(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))`,
		"admin)(|(uid=*":      `(&(objectClass=inetOrgPerson)(uid=admin\29\28|\28uid=\2a))`,
		`\2a`:                 `(&(objectClass=inetOrgPerson)(uid=\5c2a))`,
		"a\x00b":              `(&(objectClass=inetOrgPerson)(uid=a\00b))`,
		"é":                   `(&(objectClass=inetOrgPerson)(uid=\c3\a9))`,
		"*))(|(objectClass=*": `(&(objectClass=inetOrgPerson)(uid=\2a\29\29\28|\28objectClass=\2a))`,
	} {
		got := f.For(account)
		if got != want {
			t.Errorf("For(%q) = %s, want %s", account, got, want)
		}
		if _, err := ldap.CompileFilter(got); err != nil {
			t.Errorf("For(%q) = %s, not a filter: %v", account, got, err)
		}
	}
	for text, want := range map[string]string{
		"(uid=alice)":                        "exactly once",
		"(|(uid={account})(mail={account}))": "exactly once",
		"uid={account}":                      "not an LDAP filter",
		"(&(uid={account})":                  "not an LDAP filter",
	} {
		if err := NewFilter(text).Check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%s) = %v, want one containing %q", text, err, want)
		}
	}
}

func TestServerCheck(t *testing.T) {
	t.Parallel()
	good := Server{URL: "ldap://ldap.example.com:389", BindDN: "cn=w", BindPassword: "pw-s3cret"}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		s    Server
		want string
	}{
		{"scheme", Server{URL: "https://ldap.example.com"}, "not ldap://"},
		{"no host", Server{URL: "ldaps://"}, "no host"},
		{"credentials", Server{URL: "ldap://u:pw-s3cret@h"}, "credentials"},
		{"unparsable", Server{URL: "ldap://u:pw-s3cret@h:port"}, "does not parse"},
		{"rfc 4516", Server{URL: "ldap://h/dc=x?mail"}, "more than scheme"},
		{"starttls on ldaps", Server{URL: "ldaps://h", StartTLS: true}, "start_tls"},
		{"dn without password", Server{URL: "ldap://h", BindDN: "cn=w"}, "unauthenticated"},
		{"password without dn", Server{URL: "ldap://h", BindPassword: "pw-s3cret"}, "without bind_dn"},
	} {
		err := tt.s.Check()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check() = %v, want one containing %q", tt.name, err, tt.want)
		} else if strings.Contains(err.Error(), "pw-s3cret") {
			t.Errorf("%s: the error holds the password: %v", tt.name, err)
		}
	}
}

func TestCleanError(t *testing.T) {
	t.Parallel()
	raw := ldap.NewError(ldap.LDAPResultInsufficientAccessRights, errors.New("no write access to uid=alice's userPassword"))
	got := CleanError(raw).Error()
	if strings.Contains(got, "alice") || !strings.Contains(got, "50 Insufficient Access Rights") {
		t.Errorf("CleanError = %q, want the code and name alone", got)
	}
	if !IsConnError(ldap.NewError(ldap.ErrorNetwork, errors.New("reset"))) || IsConnError(raw) {
		t.Error("IsConnError tells a broken connection from a refusal wrongly")
	}
}
