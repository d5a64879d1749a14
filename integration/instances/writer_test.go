package instances

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// TestRefusedPasswordKeepsTheToken runs the gateway in front of a second
// Caddy whose sms_recovery_verify sets the password itself in a Dovecot
// passwd-file. A new password the policy refuses comes back to the person
// as the verifier's 400, writes nothing and leaves the reset token valid;
// the same token then sets a good password, once.
func TestRefusedPasswordKeepsTheToken(t *testing.T) {
	d := newDeployment(t)
	users := filepath.Join(t.TempDir(), "users")
	const bobLine = "bob@example.com:{PLAIN}bobs-old-one:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n"
	before := "alice@example.com:{PLAIN}alices-old-one:1000:1000::/home/alice::\n" + bobLine
	if err := os.WriteFile(users, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier := d.launch(t, nodeSpec{slot: slot{name: "verifier"}, config: func(httpPort int) string {
		return instanceConfig(httpPort, fmt.Sprintf(`	respond /health "ok" 200
	sms_recovery_verify %[1]s {
		key_id %[2]s
		hmac_key %[3]s
		password passwd_file %[4]q
	}
	respond 404
`, resetPath, keyID, base64.StdEncoding.EncodeToString(d.hmacKey), users))
	}})
	verifier.waitReady(t)

	gw := *d
	gw.upstream = &upstream{addr: strings.TrimPrefix(verifier.base, "http://")}
	gateway := gw.start(t, nodeSpec{slot: slot{name: "gateway"}})[0]

	flow := gateway.startFlow(t, alice)
	token := gateway.verify(t, flow, gateway.codeFor(t, flow))

	short := gateway.post(t, "/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"too short"}`, token))
	if short.Status != http.StatusBadRequest || short.str("error") != "weak_password" || short.str("rule") != "min_length" {
		t.Fatalf("a short password: %v, want 400 weak_password min_length", short)
	}
	if got, _ := os.ReadFile(users); string(got) != before {
		t.Fatalf("a refused password changed the file:\n%s", got)
	}

	good := gateway.post(t, "/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"a long and new passphrase"}`, token))
	if good.Status != http.StatusNoContent {
		t.Fatalf("the same token with a good password: %v, want 204", good)
	}
	got, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(got), "\n")
	if !strings.HasPrefix(lines[0], "alice@example.com:{BLF-CRYPT}$2") || !strings.HasSuffix(lines[0], ":1000:1000::/home/alice::\n") {
		t.Errorf("alice's line = %q, want a BLF-CRYPT hash and her other fields kept", lines[0])
	}
	if lines[1] != bobLine {
		t.Errorf("bob's line changed: %q", lines[1])
	}

	again := gateway.post(t, "/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"another long passphrase"}`, token))
	if again.Status != http.StatusUnauthorized || again.str("error") != "invalid_token" {
		t.Errorf("the token once more: %v, want 401 invalid_token", again)
	}
}

// TestDatabaseDownKeepsTheToken runs the gateway in front of a verifier
// whose sql writer cannot reach its PostgreSQL: the reset answers 500,
// writes nothing and leaves the reset token valid; once the database is
// back, the same token sets the password, once.
func TestDatabaseDownKeepsTheToken(t *testing.T) {
	needRedis(t)
	addr := "127.0.0.1:5432"
	if v := os.Getenv("SQL_TEST_POSTGRES_ADDR"); v != "" {
		addr = v
	}
	dsn := func(addr string) string {
		return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
	}
	db, err := sql.Open("pgx", dsn(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		testenv.Missing(t, "PostgreSQL at "+addr, "apt-get install postgresql; user postgres by trust, database test (docs/development.md)", err)
		return
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	table := "users_" + hex.EncodeToString(b)
	for _, stmt := range []string{
		"CREATE TABLE " + table + " (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL)",
		"INSERT INTO " + table + " VALUES ('" + alice + "', '{PLAIN}alices-old-one')",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + table) })
	password := func() string {
		var p string
		if err := db.QueryRow("SELECT password FROM " + table).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	d := newDeployment(t)
	proxy := tcpproxy.Start(t, addr)
	verifier := d.launch(t, nodeSpec{slot: slot{name: "verifier"}, config: func(httpPort int) string {
		return instanceConfig(httpPort, fmt.Sprintf(`	respond /health "ok" 200
	sms_recovery_verify %[1]s {
		key_id %[2]s
		hmac_key %[3]s
		password sql postgres %[4]q {
			update "UPDATE %[5]s SET password = $1 WHERE username = $2"
			scheme SSHA512
		}
	}
	respond 404
`, resetPath, keyID, base64.StdEncoding.EncodeToString(d.hmacKey), dsn(proxy.Addr()), table))
	}})
	verifier.waitReady(t)
	gw := *d
	gw.upstream = &upstream{addr: strings.TrimPrefix(verifier.base, "http://")}
	gateway := gw.start(t, nodeSpec{slot: slot{name: "gateway"}})[0]

	flow := gateway.startFlow(t, alice)
	token := gateway.verify(t, flow, gateway.codeFor(t, flow))
	body := fmt.Sprintf(`{"reset_token":%q,"password":"a long and new passphrase"}`, token)

	proxy.Cut()
	if down := gateway.post(t, "/recovery/reset", body); down.Status != http.StatusInternalServerError || down.str("error") != "write_failed" {
		t.Fatalf("a reset with the database cut off: %v, want 500 write_failed", down)
	}
	if p := password(); p != "{PLAIN}alices-old-one" {
		t.Fatalf("a failed reset changed the password: %q", p)
	}

	// database/sql drops a broken connection when it is used, so the first
	// try after the cut may meet one: another 500, and the token still
	// stands.
	proxy.Restore()
	var good answer
	for range 3 {
		if good = gateway.post(t, "/recovery/reset", body); good.Status != http.StatusInternalServerError {
			break
		}
	}
	if good.Status != http.StatusNoContent {
		t.Fatalf("the same token once the database is back: %v, want 204", good)
	}
	if p := password(); !strings.HasPrefix(p, "{SSHA512}") {
		t.Fatalf("password = %q, want a SSHA512 hash", p)
	}
	if again := gateway.post(t, "/recovery/reset", body); again.Status != http.StatusUnauthorized || again.str("error") != "invalid_token" {
		t.Errorf("the token once more: %v, want 401 invalid_token", again)
	}
}
