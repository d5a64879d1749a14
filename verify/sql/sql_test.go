package sqlwriter

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

// servers are the databases the tests run against: the machine's
// PostgreSQL (trust auth, user postgres) and MariaDB (root without a
// password), each with a database "test". SQL_TEST_POSTGRES_ADDR and
// SQL_TEST_MYSQL_ADDR point elsewhere.
var servers = []struct {
	driver, addrEnv, addr string
	dsn                   func(addr string) string
	p1, p2                string // the hash's and the account's placeholders
}{
	{"postgres", "SQL_TEST_POSTGRES_ADDR", "127.0.0.1:5432",
		func(addr string) string {
			return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
		}, "$1", "$2"},
	{"mysql", "SQL_TEST_MYSQL_ADDR", "127.0.0.1:3306",
		func(addr string) string { return "root@tcp(" + addr + ")/test?timeout=2s" }, "?", "?"},
}

// The accounts of every fixture and their passwords before a test.
const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	old   = "{PLAIN}old-password"
)

// fixture is a throwaway users table in one of servers, holding alice and
// bob with the password old.
type fixture struct {
	driver, addr string
	dsn          func(addr string) string
	table        string
	p1, p2       string
	admin        *sql.DB
}

// forEachServer runs f as a parallel subtest per server, with a table of
// its own, dropped when the subtest ends. A server that does not answer
// skips its subtest, or fails it when CI=true.
func forEachServer(t *testing.T, f func(t *testing.T, fx *fixture)) {
	t.Parallel()
	for _, s := range servers {
		t.Run(s.driver, func(t *testing.T) {
			t.Parallel()
			addr := s.addr
			if v := os.Getenv(s.addrEnv); v != "" {
				addr = v
			}
			fx := &fixture{driver: s.driver, addr: addr, dsn: s.dsn, p1: s.p1, p2: s.p2}
			fx.open(t)
			f(t, fx)
		})
	}
}

func (fx *fixture) open(t *testing.T) {
	t.Helper()
	db, err := sql.Open(map[string]string{"postgres": "pgx", "mysql": "mysql"}[fx.driver], fx.dsn(fx.addr))
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
		return
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	fx.table = "users_" + hex.EncodeToString(b)
	fx.admin = db
	// No unique key on username: a table that holds an account twice must
	// not get both rows changed.
	fx.exec(t, "CREATE TABLE {t} (username varchar(255) NOT NULL, password varchar(255) NOT NULL)")
	t.Cleanup(func() {
		if _, err := db.Exec(fx.q("DROP TABLE IF EXISTS {t}")); err != nil {
			t.Errorf("dropping %s: %v", fx.table, err)
		}
		db.Close()
	})
	for _, u := range []string{alice, bob} {
		fx.exec(t, "INSERT INTO {t} (username, password) VALUES ('"+u+"', '"+old+"')")
	}
}

// q fills a statement in: {t} is the table, {p1} and {p2} the placeholders.
func (fx *fixture) q(s string) string {
	return strings.NewReplacer("{t}", fx.table, "{p1}", fx.p1, "{p2}", fx.p2).Replace(s)
}

func (fx *fixture) exec(t *testing.T, stmt string) {
	t.Helper()
	if _, err := fx.admin.Exec(fx.q(stmt)); err != nil {
		t.Fatalf("%s: %v", fx.q(stmt), err)
	}
}

// rows is the table, "username password" a line, in order.
func (fx *fixture) rows(t *testing.T) string {
	t.Helper()
	rs, err := fx.admin.Query(fx.q("SELECT username, password FROM {t} ORDER BY username, password"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var b strings.Builder
	for rs.Next() {
		var u, p string
		if err := rs.Scan(&u, &p); err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + " " + p + "\n")
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// password is account's one password.
func (fx *fixture) password(t *testing.T, account string) string {
	t.Helper()
	var p string
	if err := fx.admin.QueryRow(fx.q("SELECT password FROM {t} WHERE username = {p1}"), account).Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// writer loads the writer as the verifier does, with query (filled in by
// q) against addr.
func (fx *fixture) writer(t *testing.T, query, addr, scheme string) *Writer {
	t.Helper()
	w, err := guesttest.Load(t, &Writer{Driver: fx.driver, DSN: fx.dsn(addr), Update: fx.q(query), Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

const updateQuery = "UPDATE {t} SET password = {p1} WHERE username = {p2}"

// TestSetPassword: the account's row gets the hash, with its scheme's
// prefix, that Dovecot accepts for the new password; the other rows stay.
func TestSetPassword(t *testing.T) {
	forEachServer(t, func(t *testing.T, fx *fixture) {
		w := fx.writer(t, updateQuery, fx.addr, "SHA512-CRYPT")
		const pw = "a long and new passphrase"
		if err := w.SetPassword(context.Background(), alice, pw); err != nil {
			t.Fatal(err)
		}
		got := fx.password(t, alice)
		if !strings.HasPrefix(got, "{SHA512-CRYPT}$6$") {
			t.Fatalf("alice's password = %q, want a SHA512-CRYPT hash", got)
		}
		if p := fx.password(t, bob); p != old {
			t.Errorf("bob's password changed: %q", p)
		}
		doveadm, err := exec.LookPath("doveadm")
		if err != nil {
			testenv.Missing(t, "Dovecot's doveadm, which checks the hash", "apt-get install dovecot-core", err)
			return
		}
		if out, err := exec.Command(doveadm, "pw", "-t", got, "-p", pw).CombinedOutput(); err != nil {
			t.Fatalf("doveadm refused the new password: %v: %s", err, out)
		}
	})
}

// TestSQLMetacharacters: an account made to break out of a quoted string,
// end the statement or match with a wildcard is only ever a value, which
// no row holds.
func TestSQLMetacharacters(t *testing.T) {
	forEachServer(t, func(t *testing.T, fx *fixture) {
		w := fx.writer(t, updateQuery, fx.addr, "SSHA512")
		before := fx.rows(t)
		for _, account := range []string{
			alice + "' OR '1'='1",
			alice + "' OR 1=1 -- ",
			"x'; UPDATE " + fx.table + " SET password = 'pwned'; --",
			"%",
			alice + `\`,
			`" OR ""="`,
		} {
			err := w.SetPassword(context.Background(), account, "a long and new passphrase")
			if !errors.Is(err, verify.ErrUnknownAccount) {
				t.Errorf("account %q: err = %v, want ErrUnknownAccount", account, err)
			}
		}
		if after := fx.rows(t); after != before {
			t.Fatalf("the table changed:\n%s\nwas:\n%s", after, before)
		}
	})
}

// TestUnknownAccountWritesNothing: an account no row holds is
// ErrUnknownAccount, and nothing changes.
func TestUnknownAccountWritesNothing(t *testing.T) {
	forEachServer(t, func(t *testing.T, fx *fixture) {
		w := fx.writer(t, updateQuery, fx.addr, "SSHA512")
		before := fx.rows(t)
		if err := w.SetPassword(context.Background(), "carol@example.com", "a long and new passphrase"); !errors.Is(err, verify.ErrUnknownAccount) {
			t.Fatalf("err = %v, want ErrUnknownAccount", err)
		}
		if after := fx.rows(t); after != before {
			t.Fatalf("the table changed:\n%s", after)
		}
	})
}

// TestNeverTwoAccounts: a query that matches two rows, by a mistake in it
// or an account held twice, is rolled back: neither row changes.
func TestNeverTwoAccounts(t *testing.T) {
	forEachServer(t, func(t *testing.T, fx *fixture) {
		t.Run("query matches another account", func(t *testing.T) {
			w := fx.writer(t, updateQuery+" OR username = '"+bob+"'", fx.addr, "SSHA512")
			before := fx.rows(t)
			err := w.SetPassword(context.Background(), alice, "a long and new passphrase")
			if err == nil || errors.Is(err, verify.ErrUnknownAccount) || !strings.Contains(err.Error(), "2 rows") {
				t.Fatalf("err = %v, want one about 2 rows", err)
			}
			if after := fx.rows(t); after != before {
				t.Fatalf("the table changed:\n%s\nwas:\n%s", after, before)
			}
		})
		t.Run("account held twice", func(t *testing.T) {
			fx.exec(t, "INSERT INTO {t} (username, password) VALUES ('"+bob+"', '{PLAIN}bobs-second')")
			w := fx.writer(t, updateQuery, fx.addr, "SSHA512")
			before := fx.rows(t)
			if err := w.SetPassword(context.Background(), bob, "a long and new passphrase"); err == nil || errors.Is(err, verify.ErrUnknownAccount) {
				t.Fatalf("err = %v, want an error", err)
			}
			if after := fx.rows(t); after != before {
				t.Fatalf("the table changed:\n%s\nwas:\n%s", after, before)
			}
		})
	})
}

// TestTooLongForBLFCrypt: a password longer than bcrypt reads is
// ErrPasswordTooLong, and nothing is written.
func TestTooLongForBLFCrypt(t *testing.T) {
	forEachServer(t, func(t *testing.T, fx *fixture) {
		w := fx.writer(t, updateQuery, fx.addr, "BLF-CRYPT")
		before := fx.rows(t)
		if err := w.SetPassword(context.Background(), alice, strings.Repeat("long ", 14)+"end"); !errors.Is(err, verify.ErrPasswordTooLong) {
			t.Fatalf("a 73-byte password: err = %v, want ErrPasswordTooLong", err)
		}
		if after := fx.rows(t); after != before {
			t.Fatalf("the table changed:\n%s", after)
		}
	})
}

// TestOutage: a database that cannot be reached is an error that is not
// an unknown account and holds neither the DSN's password, the new
// password nor its hash; once it is back, the same write succeeds.
func TestOutage(t *testing.T) {
	t.Parallel()
	const pw = "a long and new passphrase"
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		addr := freeport.ClosedAddr(t)
		for driver, dsn := range map[string]string{
			"postgres": "postgres://recovery:s3cret-pw@" + addr + "/test?sslmode=disable",
			"mysql":    "recovery:s3cret-pw@tcp(" + addr + ")/test",
		} {
			w, err := guesttest.Load(t, &Writer{Driver: driver, DSN: dsn, Scheme: "SSHA512",
				Update: "UPDATE users SET password = " + map[string]string{"postgres": "$1 WHERE username = $2", "mysql": "? WHERE username = ?"}[driver]})
			if err != nil {
				t.Fatal(err)
			}
			err = w.SetPassword(context.Background(), alice, pw)
			if err == nil || errors.Is(err, verify.ErrUnknownAccount) {
				t.Errorf("%s: err = %v, want a failure", driver, err)
				continue
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, pw) || strings.Contains(msg, "{SSHA512}") {
				t.Errorf("%s: error %q holds a secret", driver, msg)
			}
		}
	})
	t.Run("cut and restored", func(t *testing.T) {
		forEachServer(t, func(t *testing.T, fx *fixture) {
			p := tcpproxy.Start(t, fx.addr)
			w := fx.writer(t, updateQuery, p.Addr(), "SSHA512")
			before := fx.rows(t)
			p.Cut()
			if err := w.SetPassword(context.Background(), alice, pw); err == nil || errors.Is(err, verify.ErrUnknownAccount) {
				t.Fatalf("cut: err = %v, want a failure", err)
			}
			if after := fx.rows(t); after != before {
				t.Fatalf("the table changed while cut:\n%s", after)
			}
			p.Restore()
			// database/sql drops a broken connection when it is used; the
			// first write after the cut may still meet one of those.
			var err error
			for range 3 {
				if err = w.SetPassword(context.Background(), alice, pw); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("restored: %v", err)
			}
			if got := fx.password(t, alice); !strings.HasPrefix(got, "{SSHA512}") {
				t.Fatalf("alice's password = %q after the restore", got)
			}
		})
	})
}

func TestRefuses(t *testing.T) {
	t.Parallel()
	const pq, mq = "UPDATE users SET password = $1 WHERE username = $2", "UPDATE users SET password = ? WHERE username = ?"
	tests := []struct {
		name string
		w    Writer
		want string
	}{
		{"no driver", Writer{DSN: "x", Update: pq}, "no driver"},
		{"unknown driver", Writer{Driver: "sqlite", DSN: "x", Update: mq}, `unknown driver "sqlite"`},
		{"no dsn", Writer{Driver: "postgres", Update: pq}, "no dsn"},
		{"no query", Writer{Driver: "postgres", DSN: "postgres://h/db"}, "no query"},
		{"a select", Writer{Driver: "postgres", DSN: "postgres://h/db", Update: "SELECT $1, $2"}, "single UPDATE"},
		{"one parameter", Writer{Driver: "mysql", DSN: "u@tcp(h)/db", Update: "UPDATE users SET password = ? WHERE username = 'alice'"}, "1 parameters"},
		{"unknown scheme", Writer{Driver: "postgres", DSN: "postgres://h/db", Update: pq, Scheme: "MD5-CRYPT"}, "MD5-CRYPT"},
		{"postgres dsn", Writer{Driver: "postgres", DSN: "postgres://u:s3cret-pw@h:notaport/db", Update: pq}, "postgres dsn does not parse"},
		{"simple protocol", Writer{Driver: "postgres", DSN: "postgres://u:s3cret-pw@h/db?default_query_exec_mode=simple_protocol", Update: pq}, "simple_protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := guesttest.Load(t, &tt.w)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("load = %v, want an error containing %q and no password", err, tt.want)
			}
		})
	}
}

func TestCaddyfile(t *testing.T) {
	t.Parallel()
	var h verify.Handler
	if err := h.UnmarshalCaddyfile(cf.NewTestDispenser(`sms_recovery_verify {
		key_id gw1
		password sql postgres {env.MAIL_DB_DSN} {
			update "UPDATE users SET password = $1 WHERE username = $2"
			scheme SHA512-CRYPT
			timeout 2s
		}
	}`)); err != nil {
		t.Fatal(err)
	}
	want := `{"driver":"postgres","dsn":"{env.MAIL_DB_DSN}","scheme":"SHA512-CRYPT","timeout":2000000000,"update":"UPDATE users SET password = $1 WHERE username = $2","writer":"sql"}`
	if string(h.WriterRaw) != want {
		t.Fatalf("write = %s, want %s", h.WriterRaw, want)
	}
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "no driver", Mod: new(Writer), Input: "sql", Want: "error: a driver and a dsn are required"},
		{Name: "unknown driver", Mod: new(Writer), Input: "sql sqlite x { update \"UPDATE u SET p = ? WHERE n = ?\" }", Want: "error: unknown driver 'sqlite'"},
		{Name: "no query", Mod: new(Writer), Input: "sql mysql u@tcp(h)/db", Want: "error: update is required"},
		{Name: "a select", Mod: new(Writer), Input: "sql mysql u@tcp(h)/db {\n update \"SELECT ?, ?\"\n}", Want: "error: single UPDATE"},
		{Name: "mysql", Mod: new(Writer), Input: "sql mysql u@tcp(h)/db {\n update \"UPDATE mailbox SET password = ? WHERE username = ?\"\n}",
			Want: `{"driver":"mysql","dsn":"u@tcp(h)/db","update":"UPDATE mailbox SET password = ? WHERE username = ?"}`},
		{Name: "unknown subdirective", Mod: new(Writer), Input: "sql mysql u@tcp(h)/db {\n schema X\n}", Want: "error: unrecognized subdirective"},
	})
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	w, err := guesttest.Load(t, &Writer{Driver: "postgres", DSN: "postgres://u@127.0.0.1/db", Update: "UPDATE u SET p = $1 WHERE n = $2"})
	if err != nil {
		t.Fatal(err)
	}
	if w.Scheme != "BLF-CRYPT" || time.Duration(w.Timeout) != 5*time.Second || w.db.Stats().MaxOpenConnections != 4 {
		t.Fatalf("scheme %s, timeout %s, max open %d", w.Scheme, time.Duration(w.Timeout), w.db.Stats().MaxOpenConnections)
	}
}
