package module

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"

	ldapdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldap"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
)

// TestNoGoroutineOutlivesTheHandler provisions a handler, sends a code
// through its queue, and cleans it up: nothing it started may be left.
func TestNoGoroutineOutlivesTheHandler(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	dir := t.TempDir()
	phones := filepath.Join(dir, "phones.json")
	if err := os.WriteFile(phones, []byte(`{"alice@example.com": "+31612345678"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(dir, "outbox.jsonl")
	h := &Handler{
		PublicURL:    "https://mail.example.com",
		DirectoryRaw: fileDirectory(phones),
		SenderRaw:    outboxSender(outbox),
		StorageRaw:   memoryStorage(4321), // a store of its own
		Forward:      &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	// Cleanup drained the queue: the code went out before it returned.
	if b := startThenCleanup(t, h, "alice@example.com", outbox); !strings.Contains(b, `"to":"+31612345678"`) {
		t.Fatalf("outbox after cleanup: %q", b)
	}
	if n, ok := stores.References(memoryKey(4321)); ok || n != 0 {
		t.Errorf("the store is still referenced %d times", n)
	}
}

// TestLDAPDirectoryLifecycle provisions a handler whose phones come from a
// real LDAP server, with the bind password from the environment, sends a
// code to an entry's mobile, and cleans up: the pool's connections close
// with the handler.
func TestLDAPDirectoryLifecycle(t *testing.T) {
	srv := ldaptest.Start(t)
	t.Setenv("TEST_LDAP_PASSWORD", ldaptest.BindPassword)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
	h := &Handler{
		PublicURL: "https://mail.example.com",
		DirectoryRaw: guest(&ldapdirectory.LDAP{
			URL:           srv.URL,
			BindDN:        ldaptest.BindDN,
			BindPassword:  "{env.TEST_LDAP_PASSWORD}",
			BaseDN:        ldaptest.BaseDN,
			Filter:        "(mail={account})",
			LangAttribute: "preferredLanguage",
		}, "source"),
		SenderRaw:  outboxSender(outbox),
		StorageRaw: memoryStorage(4322), // a store of its own
		Forward:    &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	b := startThenCleanup(t, h, "Bob@Example.com", outbox)
	if !strings.Contains(b, `"to":"+4915123456789"`) {
		t.Fatalf("outbox after cleanup: %q", b)
	}
	// bob's preferredLanguage is "de-CH, en;q=0.8": the code is in German.
	if !strings.Contains(b, "Zurücksetzen des Passworts") {
		t.Errorf("the code is not in German: %s", b)
	}
}

// TestLDAPDirectoryRefused shows that a configuration the LDAP directory
// refuses stops the load, with a message naming the directive.
func TestLDAPDirectoryRefused(t *testing.T) {
	h := &Handler{
		PublicURL: "https://mail.example.com",
		DirectoryRaw: guest(&ldapdirectory.LDAP{
			URL: "ldap://127.0.0.1:1", BaseDN: "ou=people,dc=example,dc=com", Filter: "mail={account}",
		}, "source"),
		SenderRaw:  outboxSender(filepath.Join(t.TempDir(), "outbox.jsonl")),
		StorageRaw: memoryStorage(4323),
		Forward:    &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `directory ldap: filter "mail={account}" is not an LDAP filter`) {
		t.Fatalf("Provision = %v", err)
	}
	h.Cleanup()
}

// startThenCleanup provisions h, answers one /start for account from
// 192.0.2.1 (202 expected), cleans h up, which drains its SMS queue, and
// returns the outbox as it then is.
func startThenCleanup(t *testing.T, h *Handler, account, outbox string) string {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/recovery/start", strings.NewReader(fmt.Sprintf(`{"account":%q}`, account)))
	req.Header.Set("Content-Type", "application/json")
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), nil, nil)
	caddyhttp.SetVar(req.Context(), caddyhttp.ClientIPVarKey, "192.0.2.1")
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusAccepted {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(outbox)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
