package directory_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/directorytest"
	filedirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/file"
	httpdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/http"
	ldapdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldap"
	sqldirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/sql"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
)

// The modules of this namespace load, refuse bad settings and read their
// Caddyfile segment alike; their lookups are tested in their own packages.

func TestModuleLoadErrors(t *testing.T) {
	t.Setenv("DIRECTORY_TEST_EMPTY", "")
	ldap := func(extra string) string {
		return `{"url": "ldaps://ldap.example.com", "base_dn": "ou=people,dc=example,dc=com", "filter": "(mail={account})"` + extra + `}`
	}
	pg := func(extra string) string {
		return `{"driver": "postgres", "dsn": "postgres://recovery@db/postfix", "query": "SELECT phone FROM mailbox WHERE username = $1"` + extra + `}`
	}
	cases := []struct {
		name, module, raw, want string
	}{
		{"file without path", "file", `{}`, "directory file: a path is required"},
		{"file missing", "file", `{"path": "/nonexistent/phones.json"}`, "directory file: "},
		{"file from an empty variable", "file", `{"path": "{env.DIRECTORY_TEST_EMPTY}"}`, "directory file: placeholder {env.DIRECTORY_TEST_EMPTY} is empty"},
		{"http without url", "http", `{}`, "directory http: a url is required"},
		{"http url from an unset variable", "http", `{"url": "https://{env.DIRECTORY_TEST_UNSET}/phones"}`, "directory http: placeholder {env.DIRECTORY_TEST_UNSET} is empty"},
		{"http not http", "http", `{"url": "ftp://dir.example.com"}`, "directory http: url"},
		{"unknown field", "http", `{"url": "https://dir.example.com", "retries": 3}`, `unknown field "retries"`},
		{"ldap over http", "ldap", `{"url": "http://ldap.example.com", "base_dn": "dc=x", "filter": "(mail={account})"}`, "directory ldap: url \"http://ldap.example.com\" is not ldap:// or ldaps://"},
		{"ldap url with a password", "ldap", `{"url": "ldap://u:s3cret@ldap.example.com", "base_dn": "dc=x", "filter": "(mail={account})"}`, "directory ldap: url \"ldap://u:xxxxx@ldap.example.com\" holds credentials"},
		{"ldap without base_dn", "ldap", `{"url": "ldaps://ldap.example.com", "filter": "(mail={account})"}`, "directory ldap: base_dn is required"},
		{"ldap filter without account", "ldap", `{"url": "ldaps://ldap.example.com", "base_dn": "dc=x", "filter": "(mail=alice)"}`, `directory ldap: filter "(mail=alice)"`},
		{"ldap bind_dn without password", "ldap", ldap(`, "bind_dn": "cn=gw,dc=example,dc=com"`), "directory ldap: bind_dn without bind_password"},
		{"ldap password from an empty variable", "ldap", ldap(`, "bind_dn": "cn=gw,dc=example,dc=com", "bind_password": "{env.DIRECTORY_TEST_EMPTY}"`),
			"directory ldap: bind_password: placeholder {env.DIRECTORY_TEST_EMPTY} is empty"},
		{"ldap negative pool", "ldap", ldap(`, "pool_size": -1`), "directory ldap: negative pool_size"},
		{"sql unknown driver", "sql", `{"driver": "oracle", "dsn": "x", "query": "SELECT phone FROM t WHERE u = $1"}`, `directory sql: unknown driver "oracle"`},
		{"sql no query", "sql", `{"driver": "postgres", "dsn": "postgres://db/postfix"}`, "directory sql: no query"},
		{"sql two parameters", "sql", `{"driver": "postgres", "dsn": "postgres://db/x", "query": "SELECT phone FROM mailbox WHERE local_part = $1 AND domain = $2"}`, "directory sql: query has the parameter $2"},
		{"sql not a select", "sql", `{"driver": "postgres", "dsn": "postgres://db/x", "query": "DELETE FROM mailbox WHERE username = $1"}`, "directory sql: query must be a single SELECT"},
		{"sql no dsn", "sql", `{"driver": "postgres", "query": "SELECT phone FROM mailbox WHERE username = $1"}`, "directory sql: no dsn"},
		{"sql dsn from an empty variable", "sql", `{"driver": "postgres", "dsn": "{env.DIRECTORY_TEST_EMPTY}", "query": "SELECT phone FROM mailbox WHERE username = $1"}`,
			"directory sql: dsn: placeholder {env.DIRECTORY_TEST_EMPTY} is empty"},
		{"sql negative timeout", "sql", pg(`, "timeout": -1`), "directory sql: timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := directorytest.Load(t, c.module, c.raw, func(*http.Request) error { return nil })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestModulesLoad(t *testing.T) {
	phones := filepath.Join(t.TempDir(), "phones.json")
	if err := os.WriteFile(phones, []byte(`{"Alice@Example.com": "+31612345678"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIRECTORY_TEST_PHONES", phones)
	for _, c := range []struct{ name, module, raw string }{
		{"file from a variable", "file", `{"path": "{env.DIRECTORY_TEST_PHONES}"}`},
		{"ldap", "ldap", `{"url": "ldaps://ldap.example.com", "base_dn": "dc=example,dc=com", "filter": "(mail={account})"}`},
		{"postgres", "sql", `{"driver": "postgres", "dsn": "postgres://recovery@db/postfix", "query": "SELECT phone FROM mailbox WHERE username = $1"}`},
		{"mysql", "sql", `{"driver": "mysql", "dsn": "recovery@tcp(db)/postfix", "query": "SELECT phone, lang FROM mailbox WHERE username = ?"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := directorytest.Load(t, c.module, c.raw, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	d, err := directorytest.Load(t, "file", `{"path": "`+phones+`"}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := d.Lookup(context.Background(), "alice@example.com"); err != nil || e.Phone != "+31612345678" {
		t.Fatalf("Lookup = %+v, %v", e, err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "file", Mod: &filedirectory.File{}, Input: `file /etc/caddy/phones.json`, Want: `{"path":"/etc/caddy/phones.json"}`},
		{Name: "file without path", Mod: &filedirectory.File{}, Input: `file`, Want: "error: directory file: a path is required"},
		{Name: "http with timeout", Mod: &httpdirectory.HTTP{}, Input: "http https://dir/phones {\ntimeout 2s\n}", Want: `{"url":"https://dir/phones","timeout":2000000000}`},
		{Name: "http duplicate", Mod: &httpdirectory.HTTP{}, Input: "http https://dir/phones {\ntimeout 2s\ntimeout 3s\n}", Want: "error: directory http: duplicate subdirective 'timeout'"},
		{Name: "ldap not ldap", Mod: &ldapdirectory.LDAP{}, Input: "ldap https://x", Want: "error: directory ldap: url 'https://x' must start with ldap:// or ldaps://"},
		{Name: "ldap minimal", Mod: &ldapdirectory.LDAP{}, Input: "ldap ldaps://ldap.example.com {\nbase_dn dc=x\nfilter (uid={account})\n}",
			Want: `{"url":"ldaps://ldap.example.com","base_dn":"dc=x","filter":"(uid={account})"}`},
		{Name: "sql", Mod: &sqldirectory.SQL{}, Input: "sql mysql recovery@tcp(db)/postfix {\nquery \"SELECT phone FROM mailbox WHERE username = ?\"\nmax_open_conns 2\n}",
			Want: `{"driver":"mysql","dsn":"recovery@tcp(db)/postfix","query":"SELECT phone FROM mailbox WHERE username = ?","max_open_conns":2}`},
		{Name: "sql two dsns", Mod: &sqldirectory.SQL{}, Input: "sql mysql a b", Want: "error: directory sql: dsn: one value, and nothing after it"},
	})
}
