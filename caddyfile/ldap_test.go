package caddyfile

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	ldapdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldap"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

func TestParseLDAPDirectory(t *testing.T) {
	t.Parallel()
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
		{
			name: "no url",
			input: `sms_recovery {
directory ldap
}`,
			wantErr: "wrong argument count",
		},
		{
			name: "two urls",
			input: `sms_recovery {
directory ldap ldap://a ldap://b {
base_dn dc=x
filter (mail={account})
}
}`,
			wantErr: "wrong argument count",
		},
		{
			name: "no block",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com
}`,
			wantErr: "directory ldap: base_dn is required",
		},
		{
			name: "no filter",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
base_dn dc=x
}
}`,
			wantErr: "directory ldap: filter is required",
		},
		{
			name: "two placeholders",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
base_dn dc=x
filter "(|(mail={account})(uid={account}))"
}
}`,
			wantErr: "must contain {account} exactly once",
		},
		{
			name: "duplicate",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
base_dn dc=x
base_dn dc=y
}
}`,
			wantErr: "directory ldap: duplicate subdirective 'base_dn'",
		},
		{
			name: "start_tls value",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
start_tls maybe
}
}`,
			wantErr: "start_tls: 'maybe' must be on or off",
		},
		{
			name: "pool_size value",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
pool_size many
}
}`,
			wantErr: "pool_size: 'many' is not a whole number",
		},
		{
			name: "timeout value",
			input: `sms_recovery {
directory ldap ldap://ldap.example.com {
timeout soon
}
}`,
			wantErr: "timeout: 'soon' is not a duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m module.Handler
			err := m.UnmarshalCaddyfile(cf.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := caddyconfig.JSONModuleObject(tt.want, "source", "ldap", nil)
			if string(m.DirectoryRaw) != string(want) {
				t.Fatalf("directory = %s, want %s", m.DirectoryRaw, want)
			}
		})
	}
}
