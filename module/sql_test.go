package module

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	sqldirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/sql"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

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
		testenv.Missing(t, "PostgreSQL at 127.0.0.1:5432", "apt-get install postgresql; user postgres by trust, database test (docs/development.md)", err)
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
		DirectoryRaw: guest(&sqldirectory.SQL{
			Driver: "postgres",
			DSN:    "postgres://{env.SMSREC_TEST_DB_USER}@127.0.0.1:5432/test?sslmode=disable",
			Query:  "SELECT phone, lang FROM " + table + " WHERE username = $1",
		}, "source"),
		SenderRaw:  outboxSender(outbox),
		StorageRaw: memoryStorage(4322), // a store of its own
		Forward:    &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	if b := startThenCleanup(t, h, "Alice@Example.com", outbox); !strings.Contains(b, `"to":"+31612345678"`) {
		t.Fatalf("outbox after cleanup: %q", b)
	}
}
