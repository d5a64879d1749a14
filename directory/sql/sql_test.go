package sqldirectory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/directorytest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// sqlServers are the databases the tests run against: the machine's
// PostgreSQL (trust auth, user postgres) and MariaDB (root without a
// password), each with a database "test". SQL_TEST_POSTGRES_ADDR and
// SQL_TEST_MYSQL_ADDR point elsewhere.
var sqlServers = []struct {
	driver, addrEnv, addr string
	dsn                   func(addr string) string
	param                 string
}{
	{"postgres", "SQL_TEST_POSTGRES_ADDR", "127.0.0.1:5432",
		func(addr string) string {
			return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
		}, "$1"},
	{"mysql", "SQL_TEST_MYSQL_ADDR", "127.0.0.1:3306",
		func(addr string) string { return "root@tcp(" + addr + ")/test?timeout=2s" }, "?"},
}

// sqlFixture is a throwaway mailbox table, PostfixAdmin-like, in one of
// sqlServers.
type sqlFixture struct {
	driver string
	addr   string
	dsn    func(addr string) string
	table  string
	param  string  // the account's placeholder
	admin  *sql.DB // for the test's own statements
}

// forEachSQLServer runs f as a subtest per server, with a table of its own
// that is dropped when the subtest ends. A server that does not answer
// skips its subtest, or fails it when CI=true.
func forEachSQLServer(t *testing.T, f func(t *testing.T, fx *sqlFixture)) {
	for _, s := range sqlServers {
		t.Run(s.driver, func(t *testing.T) {
			t.Parallel()
			addr := s.addr
			if v := os.Getenv(s.addrEnv); v != "" {
				addr = v
			}
			fx := &sqlFixture{driver: s.driver, addr: addr, dsn: s.dsn, param: s.param}
			fx.open(t)
			f(t, fx)
		})
	}
}

func (fx *sqlFixture) open(t *testing.T) {
	t.Helper()
	driverName := map[string]string{"postgres": "pgx", "mysql": "mysql"}[fx.driver]
	db, err := sql.Open(driverName, fx.dsn(fx.addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		testenv.Missing(t, map[string]string{"postgres": "PostgreSQL", "mysql": "MariaDB"}[fx.driver]+" at "+fx.addr,
			map[string]string{"postgres": "apt-get install postgresql; user postgres by trust, database test (docs/development.md)",
				"mysql": "apt-get install mariadb-server; root without a password, database test (docs/development.md)"}[fx.driver], err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	fx.table = "mailbox_" + hex.EncodeToString(b)
	fx.admin = db
	fx.exec(t, "CREATE TABLE {t} (username varchar(255) PRIMARY KEY, phone varchar(32), lang varchar(8))")
	t.Cleanup(func() {
		if _, err := db.Exec(fx.q("DROP TABLE IF EXISTS {t}")); err != nil {
			t.Errorf("dropping %s: %v", fx.table, err)
		}
		db.Close()
	})
}

// q fills a statement in: {t} is the table, {p} the account's placeholder.
func (fx *sqlFixture) q(s string) string {
	return strings.NewReplacer("{t}", fx.table, "{p}", fx.param).Replace(s)
}

func (fx *sqlFixture) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	if _, err := fx.admin.Exec(fx.q(stmt), args...); err != nil {
		t.Fatalf("%s: %v", fx.q(stmt), err)
	}
}

// insert adds rows of username, phone, lang; nil is NULL.
func (fx *sqlFixture) insert(t *testing.T, rows ...[3]any) {
	t.Helper()
	stmt := "INSERT INTO {t} (username, phone, lang) VALUES ($1, $2, $3)"
	if fx.driver == "mysql" {
		stmt = "INSERT INTO {t} (username, phone, lang) VALUES (?, ?, ?)"
	}
	for _, r := range rows {
		fx.exec(t, stmt, r[0], r[1], r[2])
	}
}

// count returns the rows in the table, failing if it is gone.
func (fx *sqlFixture) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := fx.admin.QueryRow(fx.q("SELECT count(*) FROM {t}")).Scan(&n); err != nil {
		t.Fatalf("counting rows of %s: %v", fx.table, err)
	}
	return n
}

// directory returns an SQL directory on the fixture's table through addr
// (the server's own address when empty), closed when t ends.
func (fx *sqlFixture) directory(t *testing.T, query, addr string, timeout time.Duration) *SQL {
	t.Helper()
	if addr == "" {
		addr = fx.addr
	}
	d := &SQL{Driver: fx.driver, DSN: fx.dsn(addr), Query: fx.q(query), Timeout: caddy.Duration(timeout)}
	if err := directorytest.Provision(t, d, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSQLLookup(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t,
			[3]any{"alice@example.com", "+31612345678", "nl"},
			[3]any{"bob@example.com", " +4915123456789 ", nil},
			[3]any{"carol@example.com", nil, "de"},
			[3]any{"dave@example.com", "", nil},
		)
		withLang := fx.directory(t, "SELECT phone, lang FROM {t} WHERE username = {p}", "", 0)
		phoneOnly := fx.directory(t, "SELECT phone FROM {t} WHERE username = {p}", "", 0)
		// The username stands for an alternate address column.
		withEmail := fx.directory(t, "SELECT phone, NULL, username FROM {t} WHERE username = {p}", "", 0)
		tests := []struct {
			name    string
			d       *SQL
			account string
			want    recovery.Entry
			wantErr error
		}{
			{"phone and lang", withLang, "alice@example.com", recovery.Entry{Phone: "+31612345678", Lang: "nl"}, nil},
			{"phone, NULL lang", withLang, "bob@example.com", recovery.Entry{Phone: "+4915123456789"}, nil},
			{"phone and email", withEmail, "alice@example.com", recovery.Entry{Phone: "+31612345678", Email: "alice@example.com"}, nil},
			{"phone only query", phoneOnly, "alice@example.com", recovery.Entry{Phone: "+31612345678"}, nil},
			{"unknown account", withLang, "nobody@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
			{"NULL phone", withLang, "carol@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
			{"empty phone", phoneOnly, "dave@example.com", recovery.Entry{}, recovery.ErrUnknownAccount},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := tt.d.Lookup(context.Background(), tt.account)
				if !errors.Is(err, tt.wantErr) || got != tt.want {
					t.Fatalf("Lookup(%q) = %+v, %v; want %+v, %v", tt.account, got, err, tt.want, tt.wantErr)
				}
			})
		}
	})
}

// TestSQLAccountRule: the table's keys are in the canonical form of
// recovery.NormalizeAccount, and what a person types is looked up in that
// form.
func TestSQLAccountRule(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t, [3]any{"alice@example.com", "+31612345678", nil})
		d := fx.directory(t, "SELECT phone FROM {t} WHERE username = {p}", "", 0)
		for _, typed := range []string{"alice@example.com", "  Alice@Example.COM ", "ＡＬＩＣＥ@example.com"} {
			e, err := d.Lookup(context.Background(), typed)
			if err != nil || e.Phone != "+31612345678" {
				t.Errorf("Lookup(%q) = %+v, %v; want the row of alice@example.com", typed, e, err)
			}
		}
		// A name the rule refuses is not asked for.
		if _, err := d.Lookup(context.Background(), "alice\u200b@example.com"); !errors.Is(err, recovery.ErrUnknownAccount) {
			t.Errorf("Lookup with a zero-width space = %v, want ErrUnknownAccount", err)
		}
	})
}

// TestSQLInjection sends hostile accounts both through Lookup and straight
// to the query, past the account rule: each is a value compared with
// username, matching no row and changing nothing.
func TestSQLInjection(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t,
			[3]any{"alice@example.com", "+31612345678", nil},
			[3]any{"bob@example.com", "+31687654321", nil},
		)
		d := fx.directory(t, "SELECT phone FROM {t} WHERE username = {p}", "", 0)
		attacks := map[string]string{
			"always true":            "' OR '1'='1",
			"always true, no spaces": "'OR'1'='1",
			"ldap filter":            "*)(uid=*",
			"drop table":             "x'; DROP TABLE " + fx.table + "; --",
			"mysql comment":          "alice@example.com'#",
			"backslash quote":        `alice@example.com\' OR 1=1 -- `,
			"NUL byte":               "alice@example.com\x00' OR '1'='1",
			"10,000 chars":           strings.Repeat("a'", 5000),
		}
		before := fx.count(t)
		for name, account := range attacks {
			t.Run(name, func(t *testing.T) {
				if e, err := d.Lookup(context.Background(), account); !errors.Is(err, recovery.ErrUnknownAccount) {
					t.Errorf("Lookup = %+v, %v; want ErrUnknownAccount", e, err)
				}
				e, err := d.lookup(context.Background(), account)
				switch {
				case errors.Is(err, recovery.ErrUnknownAccount):
				case fx.driver == "postgres" && strings.Contains(account, "\x00") && errors.Is(err, recovery.ErrUnavailable):
					// PostgreSQL text cannot hold NUL: the server refuses
					// the parameter, and the flow fails closed.
				default:
					t.Errorf("lookup past the account rule = %+v, %v; want ErrUnknownAccount", e, err)
				}
				if err != nil && strings.Contains(err.Error(), account) {
					t.Errorf("error %q holds the account", err)
				}
			})
		}
		if after := fx.count(t); after != before {
			t.Fatalf("rows: %d before, %d after", before, after)
		}
		if e, err := d.Lookup(context.Background(), "alice@example.com"); err != nil || e.Phone != "+31612345678" {
			t.Fatalf("alice after the attacks = %+v, %v", e, err)
		}
	})
}

// TestSQLAmbiguous: a query that returns two rows for an account fails
// closed instead of picking one.
func TestSQLAmbiguous(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t,
			[3]any{"alice@example.com", "+31612345678", nil},
			[3]any{"mallory@example.com", "+31600000000", nil},
		)
		d := fx.directory(t, "SELECT phone FROM {t} WHERE username = {p} OR username = 'mallory@example.com'", "", 0)
		e, err := d.Lookup(context.Background(), "alice@example.com")
		if !errors.Is(err, recovery.ErrUnavailable) || e != (recovery.Entry{}) {
			t.Fatalf("Lookup = %+v, %v; want an ErrUnavailable error", e, err)
		}
		if strings.Contains(err.Error(), "+316") {
			t.Fatalf("error %q holds a phone", err)
		}
	})
}

// TestSQLColumns: a query of four columns is refused when it first runs.
func TestSQLColumns(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t, [3]any{"alice@example.com", "+31612345678", "nl"})
		d := fx.directory(t, "SELECT phone, lang, username, phone FROM {t} WHERE username = {p}", "", 0)
		if _, err := d.Lookup(context.Background(), "alice@example.com"); !errors.Is(err, recovery.ErrUnavailable) || !strings.Contains(err.Error(), "4 columns") {
			t.Fatalf("Lookup = %v, want an ErrUnavailable error about 4 columns", err)
		}
	})
}

// TestSQLTimeout: a query slower than Timeout is cut off at Timeout.
func TestSQLTimeout(t *testing.T) {
	t.Parallel()
	forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
		fx.insert(t, [3]any{"alice@example.com", "+31612345678", nil})
		query := "SELECT phone FROM {t}, pg_sleep(2) WHERE username = {p}"
		if fx.driver == "mysql" {
			query = "SELECT phone FROM {t} WHERE username = {p} AND SLEEP(2) = 0"
		}
		d := fx.directory(t, query, "", 300*time.Millisecond)
		start := time.Now()
		_, err := d.Lookup(context.Background(), "alice@example.com")
		took := time.Since(start)
		if !errors.Is(err, recovery.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lookup = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if took > 3*time.Second {
			t.Fatalf("Lookup took %s with a timeout of 300ms", took)
		}
	})
}

// TestSQLOutage: a database that cannot be reached is an error that is
// not "unknown account" and holds neither the password nor the account;
// once it is back, lookups answer again.
func TestSQLOutage(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		addr := freeport.ClosedAddr(t)
		dsns := map[string]string{
			"postgres": "postgres://recovery:s3cret-pw@" + addr + "/test?sslmode=disable",
			"mysql":    "recovery:s3cret-pw@tcp(" + addr + ")/test",
		}
		for driver, dsn := range dsns {
			d := &SQL{Driver: driver, DSN: dsn, Query: "SELECT phone FROM mailbox WHERE username = " + map[string]string{"postgres": "$1", "mysql": "?"}[driver]}
			if err := directorytest.Provision(t, d, nil); err != nil {
				t.Fatal(err)
			}
			_, err := d.Lookup(context.Background(), "alice@example.com")
			if err == nil || errors.Is(err, recovery.ErrUnknownAccount) || !errors.Is(err, recovery.ErrUnavailable) {
				t.Errorf("%s: Lookup = %v, want an ErrUnavailable error", driver, err)
				continue
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, "alice@example.com") {
				t.Errorf("%s: error %q holds the password or the account", driver, msg)
			}
		}
	})
	t.Run("cut and restored", func(t *testing.T) {
		t.Parallel()
		forEachSQLServer(t, func(t *testing.T, fx *sqlFixture) {
			fx.insert(t, [3]any{"alice@example.com", "+31612345678", nil})
			p := tcpproxy.Start(t, fx.addr)
			d := fx.directory(t, "SELECT phone FROM {t} WHERE username = {p}", p.Addr(), time.Second)
			lookup := func() error {
				_, err := d.Lookup(context.Background(), "alice@example.com")
				return err
			}
			if err := lookup(); err != nil {
				t.Fatalf("through the proxy: %v", err)
			}
			p.Cut()
			if err := lookup(); !errors.Is(err, recovery.ErrUnavailable) {
				t.Fatalf("cut: Lookup = %v, want an ErrUnavailable error", err)
			}
			if err := lookup(); !errors.Is(err, recovery.ErrUnavailable) {
				t.Fatalf("cut, again: Lookup = %v, want an ErrUnavailable error", err)
			}
			p.Restore()
			// database/sql drops a broken connection when it is used; the
			// first lookup after the cut may still meet one of those.
			var err error
			for range 3 {
				if err = lookup(); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("restored: Lookup = %v", err)
			}
		})
	})
}

func TestSQLRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  SQL
		want string
	}{
		{"no driver", SQL{DSN: "x", Query: "SELECT phone FROM m WHERE u = $1"}, "no driver"},
		{"unknown driver", SQL{Driver: "sqlite", DSN: "x", Query: "SELECT phone FROM m WHERE u = ?"}, `unknown driver "sqlite"`},
		{"no dsn", SQL{Driver: "postgres", Query: "SELECT phone FROM m WHERE u = $1"}, "no dsn"},
		{"no query", SQL{Driver: "postgres", DSN: "postgres://h/db"}, "no query"},
		{"postgres dsn", SQL{Driver: "postgres", DSN: "postgres://u:s3cret-pw@h:notaport/db", Query: "SELECT phone FROM m WHERE u = $1"}, "postgres dsn does not parse"},
		{"mysql dsn", SQL{Driver: "mysql", DSN: "u:s3cret-pw@tcp(h", Query: "SELECT phone FROM m WHERE u = ?"}, "mysql dsn does not parse"},
		{"simple protocol", SQL{Driver: "postgres", DSN: "postgres://u:s3cret-pw@h/db?default_query_exec_mode=simple_protocol", Query: "SELECT phone FROM m WHERE u = $1"}, "simple_protocol"},
		{"negative timeout", SQL{Driver: "mysql", DSN: "u@tcp(h)/db", Query: "SELECT phone FROM m WHERE u = ?", Timeout: caddy.Duration(-time.Second)}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := directorytest.Provision(t, &tt.sql, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("Provision = %v, want an error containing %q and no password", err, tt.want)
			}
		})
	}
}

func TestSQLDefaults(t *testing.T) {
	t.Parallel()
	d := &SQL{Driver: "postgres", DSN: "postgres://u@127.0.0.1/db", Query: "SELECT phone FROM m WHERE u = $1"}
	if err := directorytest.Provision(t, d, nil); err != nil {
		t.Fatal(err)
	}
	if time.Duration(d.Timeout) != 3*time.Second || d.db.Stats().MaxOpenConnections != 8 {
		t.Fatalf("timeout %s, max open %d", time.Duration(d.Timeout), d.db.Stats().MaxOpenConnections)
	}
}

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		driver, query string
		want          string // "" for a query that is fine
	}{
		{"postgres", "SELECT phone FROM mailbox WHERE username = $1", ""},
		{"postgres", "select phone, lang from mailbox where username = $1 and active = true;", ""},
		{"postgres", "SELECT phone FROM mailbox WHERE username = $1 OR alias = $1", ""},
		{"postgres", `SELECT "phone?" FROM mailbox WHERE username = $1`, ""},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ?", ""},
		{"mysql", "SELECT `phone` FROM mailbox WHERE username = ?", ""},

		{"postgres", "SELECT phone FROM mailbox WHERE username = $1 AND domain = $2", "parameter $2"},
		{"postgres", "SELECT phone FROM mailbox WHERE username = 'alice'", "no parameter $1"},
		{"postgres", "SELECT phone FROM mailbox WHERE username = ?", "no parameter $1"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? OR alias = ?", "2 parameters"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = $1", "no parameter ?"},
		{"postgres", "UPDATE mailbox SET phone = NULL WHERE username = $1", "single SELECT"},
		{"postgres", "WITH x AS (DELETE FROM mailbox RETURNING *) SELECT phone FROM x WHERE username = $1", "single SELECT"},
		{"postgres", "SELECT phone FROM mailbox WHERE username = $1; DROP TABLE mailbox", "single statement"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? -- comment", "no comment"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? # comment", "no comment"},
		{"postgres", "SELECT /* hint */ phone FROM mailbox WHERE username = $1", "no comment"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? INTO OUTFILE '/tmp/x'", "INTO"},
		{"postgres", "SELECT phone FROM mailbox WHERE username = $1 AND x = $$a$$", "dollar-quoted"},
		{"postgres", "SELECT phone FROM mailbox WHERE username = 'x", "no parameter $1"},
		// The query is read as plain text: what a quoted string holds
		// counts too.
		{"postgres", "SELECT phone FROM mailbox WHERE username = $1 AND domain <> '$2'", "parameter $2"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? AND note <> 'what?'", "2 parameters"},
		{"mysql", "SELECT phone FROM mailbox WHERE username = ? AND note <> 'a;b'", "single statement"},
		{"postgres", "   ", "no query"},
		{"oracle", "SELECT phone FROM mailbox WHERE username = :1", "unknown driver"},
	}
	for _, tt := range tests {
		err := checkQuery(tt.driver, tt.query)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkQuery(%s, %q) = %v, want nil", tt.driver, tt.query, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkQuery(%s, %q) = %v, want an error containing %q", tt.driver, tt.query, err, tt.want)
		}
	}
}

// ExampleSQL loads the directory from its JSON, as the gateway does. It does
// not connect: the database is first asked at the first lookup.
func ExampleSQL() {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	_, err := ctx.LoadModuleByID("http.handlers.sms_recovery.directories.sql", json.RawMessage(`{
		"driver": "postgres",
		"dsn": "postgres://recovery@db.example.com/postfix",
		"query": "SELECT phone, lang FROM mailbox WHERE username = $1 AND active"
	}`))
	fmt.Println(err)
	// Output: <nil>
}
