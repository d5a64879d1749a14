package ldapwriter

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

// TestVerifierAnswers runs sms_recovery_verify with the ldap writer on a
// real slapd and sends it signed resets as the gateway does: a good one is
// 204 and set; an unknown account, or one made of filter metacharacters,
// is 404 and writes nothing; with slapd down it is 500, which the gateway
// takes as "keep the reset token", and nothing is written.
func TestVerifierAnswers(t *testing.T) {
	srv := ldaptest.Start(t)
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	signer, err := httpsig.NewHMACSigner("gw1", key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &verify.Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(key),
		WriterRaw: json.RawMessage(fmt.Sprintf(`{"writer": "ldap", "url": %q, "bind_dn": %q, "bind_password": %q,
			"base_dn": %q, "filter": "(uid={account})", "mode": "replace", "scheme": "SSHA512"}`,
			srv.URL, ldaptest.WriterDN, ldaptest.WriterPassword, ldaptest.BaseDN))}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	reset := func(account, password string) *httptest.ResponseRecorder {
		t.Helper()
		body := fmt.Sprintf(`{"password":%q}`, password)
		r := httptest.NewRequest(http.MethodPost, "/api/reset-password", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := signer.Sign(r.Header, r.Method, r.URL.EscapedPath(), []byte(body), account, time.Now()); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, nextNotCalled{t}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	before := srv.Passwords(t)
	for _, account := range []string{"nobody", "*", "*)(uid=*", "alice)(uid=bob", "alice*"} {
		if w := reset(account, "a long and new passphrase"); w.Code != http.StatusNotFound {
			t.Errorf("a reset for %q = %d %s, want 404", account, w.Code, w.Body)
		}
	}
	srv.Stop()
	if w := reset("alice", "a long and new passphrase"); w.Code != http.StatusInternalServerError {
		t.Errorf("a reset with slapd down = %d %s, want 500", w.Code, w.Body)
	}
	srv.Restart()
	after := srv.Passwords(t)
	for dn, was := range before {
		if strings.Join(after[dn], "\n") != strings.Join(was, "\n") {
			t.Errorf("%s's userPassword changed: %q, was %q", dn, after[dn], was)
		}
	}

	if w := reset("alice", "a long and new passphrase"); w.Code != http.StatusNoContent {
		t.Fatalf("a good reset = %d %s, want 204", w.Code, w.Body)
	}
	if !srv.CanBind(t, "uid=alice,"+ldaptest.BaseDN, "a long and new passphrase") {
		t.Error("alice's new password does not bind")
	}
}

// nextNotCalled fails the test if the verifier passes a reset on: with a
// writer it answers every reset itself.
type nextNotCalled struct{ t *testing.T }

func (n nextNotCalled) ServeHTTP(http.ResponseWriter, *http.Request) error {
	n.t.Error("the verifier passed a reset on to the next handler")
	return nil
}
