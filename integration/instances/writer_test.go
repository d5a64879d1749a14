package instances

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		write passwd_file %[4]q
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
