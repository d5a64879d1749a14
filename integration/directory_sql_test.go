package integration

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// sqlDB is a throwaway PostfixAdmin-like mailbox table in the machine's
// PostgreSQL (trust auth, user postgres) or MariaDB (root without a
// password), each with a database "test".
type sqlDB struct {
	driver string
	addr   string
	table  string
	param  string // the account's placeholder
	admin  *sql.DB
}

var sqlDrivers = []string{"postgres", "mysql"}

func (db *sqlDB) dsn(addr string) string {
	if db.driver == "postgres" {
		return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
	}
	return "root@tcp(" + addr + ")/test?timeout=2s"
}

// newSQLDB creates the table, with alice and bob in it, and drops it when
// t ends. A server that does not answer skips t, or fails it when CI=true.
func newSQLDB(t *testing.T, driver string) *sqlDB {
	t.Helper()
	db := &sqlDB{driver: driver, addr: "127.0.0.1:5432", param: "$1"}
	name := "pgx"
	if driver == "mysql" {
		db.addr, db.param, name = "127.0.0.1:3306", "?", "mysql"
	}
	admin, err := sql.Open(name, db.dsn(db.addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		testenv.Missing(t, map[string]string{"postgres": "PostgreSQL", "mysql": "MariaDB"}[driver]+" at "+db.addr,
			map[string]string{"postgres": "apt-get install postgresql; user postgres by trust, database test (docs/development.md)",
				"mysql": "apt-get install mariadb-server; root without a password, database test (docs/development.md)"}[driver], err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	db.table, db.admin = "mailbox_"+hex.EncodeToString(b), admin
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP TABLE IF EXISTS " + db.table); err != nil {
			t.Errorf("dropping %s: %v", db.table, err)
		}
		admin.Close()
	})
	db.exec(t, "CREATE TABLE "+db.table+" (username varchar(255) PRIMARY KEY, phone varchar(32), lang varchar(8))")
	insert := "INSERT INTO " + db.table + " VALUES ($1, $2, $3)"
	if driver == "mysql" {
		insert = "INSERT INTO " + db.table + " VALUES (?, ?, ?)"
	}
	db.exec(t, insert, alice, phoneNL, nil)
	db.exec(t, insert, "bob@example.com", "+4915123456789", "de")
	return db
}

func (db *sqlDB) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	if _, err := db.admin.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func (db *sqlDB) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := db.admin.QueryRow("SELECT count(*) FROM " + db.table).Scan(&n); err != nil {
		t.Fatalf("counting rows of %s: %v", db.table, err)
	}
	return n
}

// directive is the directory sql block for the table, through addr.
func (db *sqlDB) directive(addr string) string {
	return fmt.Sprintf("directory sql %s %q {\n\t\t\tquery \"SELECT phone, lang FROM %s WHERE username = %s\"\n\t\t\ttimeout 1s\n\t\t}",
		db.driver, db.dsn(addr), db.table, db.param)
}

// TestSQLDirectoryWholeFlow: with the phones in a database, a person who
// types their account in any case gets a code, verifies it, and the reset
// reaches the upstream signed for the table's own key.
func TestSQLDirectoryWholeFlow(t *testing.T) {
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			db := newSQLDB(t, driver)
			up := startUpstream(t, "127.0.0.1:0")
			c := start(t, &site{Upstream: up.addr, Directory: db.directive(db.addr)})

			flow := c.startFlow("  Alice@Example.COM ")
			msgs := c.messages(1)
			if len(msgs) != 1 || msgs[0].To != phoneNL {
				t.Fatalf("outbox = %+v, want one SMS to %s", msgs, phoneNL)
			}
			c.reset(flow, 1, alice)
			got := up.got()
			if len(got) != 1 || got[0].account != alice || got[0].header.Get("X-Recovery-Account") != alice || got[0].body != password {
				t.Fatalf("upstream got %+v, want one reset for %s", got, alice)
			}
		})
	}
}

// TestSQLDirectoryOutage: while the database cannot be reached, /start
// answers 503 and the routes that do not need it still answer; once it is
// back, /start works again, with no reload.
func TestSQLDirectoryOutage(t *testing.T) {
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			db := newSQLDB(t, driver)
			p := tcpproxy.Start(t, db.addr)
			up := startUpstream(t, "127.0.0.1:0")
			c := start(t, &site{Upstream: up.addr, Directory: db.directive(p.Addr()),
				Extra: "limit start_ip 100 1h\n\t\tlimit start_account 100 1h\n\t\tlimit start_phone 100 1h"})
			c.startFlow(alice)
			c.messages(1)

			p.Cut()
			a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice))
			if a.Status != http.StatusServiceUnavailable {
				t.Fatalf("start while the database is cut: %d %s, want 503", a.Status, a.Raw)
			}
			if strings.Contains(a.Raw, db.table) || strings.Contains(a.Raw, "postgres") || strings.Contains(a.Raw, "tcp(") {
				t.Errorf("the 503 tells the client about the database: %s", a.Raw)
			}
			for _, path := range []string{"/health", "/recovery/"} {
				res, err := c.http.Get(gateway + path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("GET %s while the database is cut: %d, want 200", path, res.StatusCode)
				}
			}

			p.Restore()
			// A pooled connection broken by the cut may fail one more
			// lookup before database/sql drops it.
			for i := 0; ; i++ {
				a = c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice))
				if a.Status == http.StatusAccepted || i == 2 {
					break
				}
			}
			if a.Status != http.StatusAccepted {
				t.Fatalf("start once the database is back: %d %s", a.Status, a.Raw)
			}
			if msgs := c.messages(2); len(msgs) != 2 || msgs[1].To != phoneNL {
				t.Fatalf("outbox = %+v, want a second SMS to %s", msgs, phoneNL)
			}
		})
	}
}

// TestSQLDirectoryInjection: hostile accounts are refused by the account
// rule or looked up as plain values: no SMS goes out, the answer is that
// of any unknown account, and the table is unchanged.
func TestSQLDirectoryInjection(t *testing.T) {
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			db := newSQLDB(t, driver)
			up := startUpstream(t, "127.0.0.1:0")
			c := start(t, &site{Upstream: up.addr, Directory: db.directive(db.addr),
				Extra: "limit start_ip 100 1h\n\t\tlimit start_account 100 1h"})
			before := db.count(t)
			for _, account := range []string{
				"' OR '1'='1",
				"'OR'1'='1",
				"*)(uid=*",
				"x'; DROP TABLE " + db.table + "; --",
				"x';DROP/**/TABLE/**/" + db.table + ";--",
				"alice@example.com\x00",
				strings.Repeat("a'", 5000),
			} {
				body := fmt.Sprintf(`{"account":%q}`, account)
				a := c.post("/recovery/start", body)
				if a.Status != http.StatusAccepted && a.Status != http.StatusBadRequest {
					t.Errorf("start %.40q: %d %s, want 202 (a decoy) or 400", account, a.Status, a.Raw)
				}
			}
			// Decoys are queued like real messages and dropped unseen; a
			// real start after them is the first line of the outbox.
			c.startFlow("bob@example.com")
			if msgs := c.messages(1); len(msgs) != 1 || msgs[0].To != "+4915123456789" {
				t.Fatalf("outbox = %+v, want only bob's code", msgs)
			}
			if after := db.count(t); after != before {
				t.Fatalf("rows: %d before, %d after", before, after)
			}
		})
	}
}
