package verify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
)

func init() {
	caddy.RegisterModule(memoryWriter{})
}

// memoryWriter is a password writer over a map, shared by its instances.
type memoryWriter struct {
	Fail bool `json:"fail,omitempty"`
}

var (
	memoryWriterMu        sync.Mutex
	memoryWriterPasswords = map[string]string{}
)

func (memoryWriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: WriterNamespace + ".test_memory", New: func() caddy.Module { return new(memoryWriter) }}
}

func (m *memoryWriter) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next()
	return nil
}

func (m *memoryWriter) SetPassword(_ context.Context, account, password string) error {
	memoryWriterMu.Lock()
	defer memoryWriterMu.Unlock()
	if m.Fail {
		return errors.New("disk full")
	}
	if len(password) > 72 {
		return fmt.Errorf("%w: as bcrypt", ErrPasswordTooLong)
	}
	if _, ok := memoryWriterPasswords[account]; !ok {
		return ErrUnknownAccount
	}
	memoryWriterPasswords[account] = password
	return nil
}

func storedPassword(account string) string {
	memoryWriterMu.Lock()
	defer memoryWriterMu.Unlock()
	return memoryWriterPasswords[account]
}

func TestWriterSetsThePassword(t *testing.T) {
	memoryWriterMu.Lock()
	memoryWriterPasswords["alice@example.com"] = "old"
	memoryWriterMu.Unlock()
	blocklist := filepath.Join(t.TempDir(), "common")
	if err := os.WriteFile(blocklist, []byte("correcthorsebatterystaple\n\nPassword1234567890\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey),
		WriterRaw: json.RawMessage(`{"writer": "test_memory"}`), PasswordBlocklist: blocklist}
	newVerifyTestHandler(t, h)

	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		rule, stored            string
	}{
		{"missing", `{"other":"x"}`, "application/json", 400, "required", "old"},
		{"short", `{"password":"fourteen chars"}`, "application/json", 400, "min_length", "old"},
		{"account name", `{"password":"ALICE@example.com"}`, "application/json", 400, "not_account", "old"},
		{"blocklisted", `{"password":"CorrectHorseBatteryStaple"}`, "application/json", 400, "blocklist", "old"},
		{"good json", `{"password":"a long new passphrase"}`, "application/json", 204, "", "a long new passphrase"},
		{"good form", `password=another+long+passphrase`, "application/x-www-form-urlencoded", 204, "", "another long passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := verifyTestRequest(t, signer, tc.body)
			r.Header.Set("Content-Type", tc.contentType)
			w := httptest.NewRecorder()
			next := &verifyNext{}
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || next.called {
				t.Fatalf("status %d (next called: %v), want %d: %s", w.Code, next.called, tc.status, w.Body)
			}
			var p struct{ Error, Rule string }
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			if tc.rule != "" && (p.Error != "weak_password" || p.Rule != tc.rule) {
				t.Errorf("body %s, want rule %s", w.Body, tc.rule)
			}
			if got := storedPassword("alice@example.com"); got != tc.stored {
				t.Errorf("stored %q, want %q", got, tc.stored)
			}
		})
	}
}

func TestWriterRefusals(t *testing.T) {
	signer, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, writer, account string
		status                int
		code                  string
	}{
		{"unknown account", `{"writer": "test_memory"}`, "nobody@example.com", 404, "unknown_account"},
		{"store fails", `{"writer": "test_memory", "fail": true}`, "alice@example.com", 500, "write_failed"},
		{"longer than the scheme takes", `{"writer": "test_memory"}`, "alice@example.com", 400, "weak_password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey), WriterRaw: json.RawMessage(tc.writer)}
			newVerifyTestHandler(t, h)
			body := `{"password":"a long new passphrase"}`
			if tc.code == "weak_password" {
				body = `{"password":"` + strings.Repeat("long passphrase ", 5) + `"}`
			}
			r := httptest.NewRequest(http.MethodPost, "/api/reset-password", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if err := signer.Sign(r.Header, r.Method, "/api/reset-password", []byte(body), tc.account, verifyTestNow.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, r, &verifyNext{}); err != nil {
				t.Fatal(err)
			}
			var p struct{ Error string }
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != tc.status || p.Error != tc.code {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.code)
			}
		})
	}
}

func TestWriterCaddyfile(t *testing.T) {
	var h Handler
	d := cf.NewTestDispenser(`sms_recovery_verify {
		key_id gw1
		password test_memory
		min_password_length 20
		password_field new_password
		password_blocklist /etc/common-passwords
	}`)
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if string(h.WriterRaw) != `{"writer":"test_memory"}` || h.MinPasswordLength != 20 ||
		h.PasswordField != "new_password" || h.PasswordBlocklist != "/etc/common-passwords" {
		t.Fatalf("got %+v (write %s)", h, h.WriterRaw)
	}
}
