package caddyfile

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	ldapdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldap"
)

func TestParseLDAPDirectory(t *testing.T) {
	t.Parallel()
	// ldapBlock is a directory ldap block with the subdirectives lines.
	ldapBlock := func(lines string) string {
		return "sms_recovery {\ndirectory ldap ldap://ldap.example.com {\n" + lines + "\n}\n}"
	}
	tests := []struct {
		name    string
		input   string
		want    *ldapdirectory.LDAP
		wantErr string
	}{
		{
			name: "minimal",
			input: `sms_recovery {
				directory ldap ldaps://ldap.example.com {
					base_dn ou=people,dc=example,dc=com
					filter  (uid={account})
				}
			}`,
			want: &ldapdirectory.LDAP{URL: "ldaps://ldap.example.com", BaseDN: "ou=people,dc=example,dc=com", Filter: "(uid={account})"},
		},
		{
			name: "url from the environment",
			input: `sms_recovery {
directory ldap {env.LDAP_URL} {
base_dn dc=example,dc=com
filter (mail={account})
}
}`,
			want: &ldapdirectory.LDAP{URL: "{env.LDAP_URL}", BaseDN: "dc=example,dc=com", Filter: "(mail={account})"},
		},
		{name: "no url", input: "sms_recovery {\ndirectory ldap\n}", wantErr: "wrong argument count"},
		{name: "two urls", input: "sms_recovery {\ndirectory ldap ldap://a ldap://b {\nbase_dn dc=x\nfilter (mail={account})\n}\n}", wantErr: "directory ldap: url: one value, and nothing after it"},
		{name: "no block", input: "sms_recovery {\ndirectory ldap ldap://ldap.example.com\n}", wantErr: "directory ldap: base_dn is required"},
		{name: "no filter", input: ldapBlock("base_dn dc=x"), wantErr: "directory ldap: filter is required"},
		{name: "two placeholders", input: ldapBlock("base_dn dc=x\nfilter \"(|(mail={account})(uid={account}))\""), wantErr: "must contain {account} exactly once"},
		{name: "duplicate", input: ldapBlock("base_dn dc=x\nbase_dn dc=y"), wantErr: "directory ldap: duplicate subdirective 'base_dn'"},
		{name: "start_tls value", input: ldapBlock("start_tls maybe"), wantErr: "start_tls: 'maybe' must be on or off"},
		{name: "pool_size value", input: ldapBlock("pool_size many"), wantErr: "pool_size: 'many' is not a whole number"},
		{name: "timeout value", input: ldapBlock("timeout soon"), wantErr: "timeout: 'soon' is not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := parseHandler(t, tt.input, tt.wantErr)
			if !ok {
				return
			}
			want := caddyconfig.JSONModuleObject(tt.want, "source", "ldap", nil)
			if string(m.DirectoryRaw) != string(want) {
				t.Fatalf("directory = %s, want %s", m.DirectoryRaw, want)
			}
		})
	}
}
