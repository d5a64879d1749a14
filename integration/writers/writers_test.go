package writers

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// The accounts of every store and their passwords before a test.
const (
	alice       = "alice@example.com"
	bob         = "bob@example.com"
	aliceOld    = "alice-old-password"
	bobOld      = "bob-old-password"
	newPassword = "a long and new passphrase"
)

// TestPasswdFile sets a password in the passwd-file Dovecot reads.
func TestPasswdFile(t *testing.T) {
	t.Parallel()
	needDovecot(t, "")
	state := newState(t)
	passwd := filepath.Join(state, "auth", "passwd")
	lines := fmt.Sprintf("%s:{PLAIN}%s::::::\n%s:{PLAIN}%s::::::\n", alice, aliceOld, bob, bobOld)
	if err := os.WriteFile(passwd, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDovecot(t, state, fmt.Sprintf("passdb {\n  driver = passwd-file\n  args = username_format=%%Lu %s\n}", passwd))
	d.checkPasswords(t, alice, aliceOld, "not-her-password")

	v := startVerifier(t, fmt.Sprintf("passwd_file %q {\n\t\t\tscheme SHA512-CRYPT\n\t\t}", passwd))
	if a := v.reset(t, alice, newPassword); a.Status != http.StatusNoContent {
		t.Fatalf("reset = %v, want 204", a)
	}
	d.nextSecond(t)
	d.checkPasswords(t, alice, newPassword, aliceOld)
	d.checkPasswords(t, bob, bobOld, newPassword)
	if log := v.logText(); strings.Contains(log, newPassword) || strings.Contains(log, "{SHA512-CRYPT}") {
		t.Errorf("Caddy's log holds the password or its hash:\n%s", log)
	}
}

// sqlStore is a database Dovecot reads its passdb from.
type sqlStore struct {
	driver    string // sms_recovery_verify's: postgres or mysql
	dovecot   string // Dovecot's driver: pgsql or mysql
	addrEnv   string
	addr      string
	dsn       func(addr string) string // the writer's
	stdDriver string                   // database/sql's
	p1, p2    string                   // the writer's placeholders
	scheme    string
	need, fix string
}

var sqlStores = []sqlStore{
	{"postgres", "pgsql", "SQL_TEST_POSTGRES_ADDR", "127.0.0.1:5432",
		func(addr string) string {
			return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
		},
		"pgx", "$1", "$2", "SHA512-CRYPT",
		"PostgreSQL", "apt-get install postgresql; user postgres by trust, database test (docs/development.md)"},
	{"mysql", "mysql", "SQL_TEST_MYSQL_ADDR", "127.0.0.1:3306",
		func(addr string) string { return "root@tcp(" + addr + ")/test?timeout=2s" },
		"mysql", "?", "?", "BLF-CRYPT",
		"MariaDB", "apt-get install mariadb-server; root without a password, database test (docs/development.md)"},
}

// TestSQL sets a password in a PostgreSQL and a MariaDB table Dovecot
// reads, through the sql writer, and attacks it on the way: an account
// with SQL in it, an account no row holds, a password too long for
// bcrypt, and the database cut off from the writer.
func TestSQL(t *testing.T) {
	t.Parallel()
	for _, s := range sqlStores {
		t.Run(s.driver, func(t *testing.T) {
			t.Parallel()
			needDovecot(t, s.dovecot)
			addr := s.addr
			if v := os.Getenv(s.addrEnv); v != "" {
				addr = v
			}
			db, table := newUsersTable(t, s, addr)
			rows := func() string { return dump(t, db, table) }

			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatal(err)
			}
			state := newState(t)
			conf := filepath.Join(state, "auth", "dovecot-sql.conf.ext")
			user := map[string]string{"pgsql": "postgres", "mysql": "root"}[s.dovecot]
			ext := fmt.Sprintf("driver = %s\nconnect = host=%s port=%s dbname=test user=%s\n"+
				"password_query = SELECT username AS user, password FROM %s WHERE username = '%%u'\n",
				s.dovecot, host, port, user, table)
			if err := os.WriteFile(conf, []byte(ext), 0o600); err != nil {
				t.Fatal(err)
			}
			d := startDovecot(t, state, fmt.Sprintf("passdb {\n  driver = sql\n  args = %s\n}", conf))
			d.checkPasswords(t, alice, aliceOld, "not-her-password")

			// The writer reaches the database through a proxy the test
			// can cut; Dovecot reaches it directly.
			proxy := tcpproxy.Start(t, addr)
			v := startVerifier(t, fmt.Sprintf("sql %s %q {\n\t\t\tupdate \"UPDATE %s SET password = %s WHERE username = %s\"\n\t\t\tscheme %s\n\t\t\ttimeout 5s\n\t\t}",
				s.driver, s.dsn(proxy.Addr()), table, s.p1, s.p2, s.scheme))
			before := rows()

			for _, account := range []string{alice + "' OR '1'='1", "x'; UPDATE " + table + " SET password = 'pwned'; --", "carol@example.com"} {
				if a := v.reset(t, account, newPassword); a.Status != http.StatusNotFound || a.str("error") != "unknown_account" {
					t.Errorf("reset of %q = %v, want 404 unknown_account", account, a)
				}
			}
			if s.scheme == "BLF-CRYPT" {
				long := strings.Repeat("long ", 14) + "end" // 73 bytes
				if a := v.reset(t, alice, long); a.Status != http.StatusBadRequest || a.str("rule") != "max_length" {
					t.Errorf("a 73-byte password = %v, want 400 max_length", a)
				}
			}
			if after := rows(); after != before {
				t.Fatalf("refused resets changed the table:\n%s\nwas:\n%s", after, before)
			}

			proxy.Cut()
			if a := v.reset(t, alice, newPassword); a.Status != http.StatusInternalServerError || a.str("error") != "write_failed" {
				t.Fatalf("reset with the database cut off = %v, want 500 write_failed", a)
			}
			if after := rows(); after != before {
				t.Fatalf("a failed reset changed the table:\n%s", after)
			}
			d.checkPasswords(t, alice, aliceOld, newPassword)

			// The gateway keeps the reset token after a 500; the person's
			// retry is a reset signed anew. database/sql drops a broken
			// connection when it is used, so the first retry may meet one.
			proxy.Restore()
			var a answer
			for range 3 {
				if a = v.reset(t, alice, newPassword); a.Status == http.StatusNoContent {
					break
				}
			}
			if a.Status != http.StatusNoContent {
				t.Fatalf("reset once the database is back = %v, want 204", a)
			}
			d.checkPasswords(t, alice, newPassword, aliceOld)
			d.checkPasswords(t, bob, bobOld, newPassword)

			var hash string
			if err := db.QueryRow("SELECT password FROM " + table + " WHERE username = '" + alice + "'").Scan(&hash); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(hash, "{"+s.scheme+"}") {
				t.Errorf("alice's password = %q, want a %s hash", hash, s.scheme)
			}
			if log := v.logText(); strings.Contains(log, newPassword) || strings.Contains(log, hash) {
				t.Errorf("Caddy's log holds the password or its hash:\n%s", log)
			}
		})
	}
}

// newUsersTable creates a users table of its own in s, holding alice and
// bob with their old passwords, dropped when t ends. A server that does
// not answer skips t, or fails it when CI=true.
func newUsersTable(t *testing.T, s sqlStore, addr string) (*sql.DB, string) {
	t.Helper()
	db, err := sql.Open(s.stdDriver, s.dsn(addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		testenv.Missing(t, s.need+" at "+addr, s.fix, err)
		return nil, ""
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	table := "users_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
			t.Errorf("dropping %s: %v", table, err)
		}
		db.Close()
	})
	for _, stmt := range []string{
		"CREATE TABLE " + table + " (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL)",
		"INSERT INTO " + table + " (username, password) VALUES ('" + alice + "', '{PLAIN}" + aliceOld + "'), ('" + bob + "', '{PLAIN}" + bobOld + "')",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return db, table
}

// dump is the table, "username password" a line, in order.
func dump(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rs, err := db.Query("SELECT username, password FROM " + table + " ORDER BY username")
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
