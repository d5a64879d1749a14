package module

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"
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
		PublicURL: "https://mail.example.com",
		Directory: &Directory{File: phones},
		SMS:       &SMS{Outbox: outbox},
		Storage:   &Storage{Memory: &MemoryStorage{MaxEntries: 4321}}, // a store of its own
		Forward:   &Forward{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}

	req := httptest.NewRequest(http.MethodPost, "/recovery/start", strings.NewReader(`{"account":"alice@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	repl := caddy.NewReplacer()
	req = caddyhttp.PrepareRequest(req, repl, nil, nil)
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
	cancel()
	// Cleanup drained the queue: the code went out before it returned.
	b, err := os.ReadFile(outbox)
	if err != nil || !strings.Contains(string(b), `"to":"+31612345678"`) {
		t.Fatalf("outbox after cleanup: %q, %v", b, err)
	}
	if n, ok := stores.References("memory/4321"); ok || n != 0 {
		t.Errorf("the store is still referenced %d times", n)
	}
}
