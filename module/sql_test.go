package module

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestValidateSQLDirectory(t *testing.T) {
	t.Parallel()
	pg := func() *SQLDirectory {
		return &SQLDirectory{Driver: "postgres", DSN: "postgres://recovery@db/postfix", Query: "SELECT phone FROM mailbox WHERE username = $1"}
	}
	cases := []struct {
		name string
		dir  func() *Directory
		want string // part of the error; "" for none
	}{
		{"postgres", func() *Directory { return &Directory{SQL: pg()} }, ""},
		{"mysql", func() *Directory {
			return &Directory{SQL: &SQLDirectory{Driver: "mysql", DSN: "recovery@tcp(db)/postfix", Query: "SELECT phone, lang FROM mailbox WHERE username = ?"}}
		}, ""},
		{"sql and file", func() *Directory { return &Directory{File: "phones.json", SQL: pg()} }, "directory: give exactly one of file, http, ldap or sql"},
		{"unknown driver", func() *Directory { d := pg(); d.Driver = "oracle"; return &Directory{SQL: d} }, `directory sql: unknown driver "oracle"`},
		{"no query", func() *Directory { d := pg(); d.Query = ""; return &Directory{SQL: d} }, "directory sql: no query"},
		{"two placeholders", func() *Directory {
			d := pg()
			d.Query = "SELECT phone FROM mailbox WHERE local_part = $1 AND domain = $2"
			return &Directory{SQL: d}
		}, "directory sql: query has the parameter $2"},
		{"not a select", func() *Directory {
			d := pg()
			d.Query = "DELETE FROM mailbox WHERE username = $1"
			return &Directory{SQL: d}
		}, "directory sql: query must be a single SELECT"},
		{"no dsn", func() *Directory { d := pg(); d.DSN = ""; return &Directory{SQL: d} }, "directory sql: a dsn is required"},
		{"negative timeout", func() *Directory { d := pg(); d.Timeout = -1; return &Directory{SQL: d} }, "directory sql: timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := validHandler()
			h.Directory = c.dir()
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

// TestSQLDirectoryProvision provisions a handler whose directory is a
// PostgreSQL table, with the DSN's user from an {env.*} placeholder, starts
// a flow for an account of the table, and cleans up: the code reached the
// outbox and no connection goroutine is left.
func TestSQLDirectoryProvision(t *testing.T) {
	dsn := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&connect_timeout=2"
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL does not answer and CI=true: %v", err)
		}
		t.Skipf("skipping: PostgreSQL does not answer on 127.0.0.1:5432 (%v)", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	table := "mailbox_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE TABLE " + table + " (username varchar(255) PRIMARY KEY, phone varchar(32), lang varchar(8))"); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec("DROP TABLE " + table)
	if _, err := admin.Exec("INSERT INTO "+table+" VALUES ($1, $2, NULL)", "alice@example.com", "+31612345678"); err != nil {
		t.Fatal(err)
	}

	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv("SMSREC_TEST_DB_USER", "postgres")
	outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
	h := &Handler{
		PublicURL: "https://mail.example.com",
		Directory: &Directory{SQL: &SQLDirectory{
			Driver: "postgres",
			DSN:    "postgres://{env.SMSREC_TEST_DB_USER}@127.0.0.1:5432/test?sslmode=disable",
			Query:  "SELECT phone, lang FROM " + table + " WHERE username = $1",
		}},
		SMS:     &SMS{Outbox: outbox},
		Storage: &Storage{Memory: &MemoryStorage{MaxEntries: 4322}}, // a store of its own
		Forward: &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	if b := startThenCleanup(t, h, "Alice@Example.com", outbox); !strings.Contains(b, `"to":"+31612345678"`) {
		t.Fatalf("outbox after cleanup: %q", b)
	}
}
