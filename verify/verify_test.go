package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/examplekey"
)

// verifyTestKey is a test-only 64-byte hmac key.
var verifyTestKey = bytes.Repeat([]byte{0x5a}, 64)

// verifyTestNow is the verifier's clock in these tests.
var verifyTestNow = time.Unix(1767225600, 0)

// newVerifyTestHandler provisions h with a fixed clock and a log observer.
func newVerifyTestHandler(t *testing.T, h *Handler) *zapobs.ObservedLogs {
	t.Helper()
	logs, _ := loadVerifyTestHandler(t, h)
	return logs
}

// loadVerifyTestHandler provisions h as newVerifyTestHandler does, in a
// config context of its own, and returns unload, which ends that context
// as Caddy does when the config is replaced or the process stops: the
// nonce store the config loaded is cleaned up. t's end unloads it too.
func loadVerifyTestHandler(t *testing.T, h *Handler) (logs *zapobs.ObservedLogs, unload func()) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h.clock = clock.NewManual(verifyTestNow)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	core, logs := zapobs.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	return logs, cancel
}

// verifyTestRequest returns a request signed by s as the gateway forwards it.
func verifyTestRequest(t *testing.T, s *httpsig.Signer, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/reset-password", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if err := s.Sign(r.Header, r.Method, r.URL.EscapedPath(), []byte(body), "alice@example.com", verifyTestNow.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	return r
}

// verifyNext records what the next handler receives.
type verifyNext struct {
	called  bool
	body    string
	account string
}

func (n *verifyNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.called = true
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	n.body = string(b)
	n.account = r.Header.Get(httpsig.HeaderAccount)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func TestHandlerServeHTTP(t *testing.T) {
	t.Parallel()
	signer, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"password":"N3w-s3cret!"}`
	tests := []struct {
		name       string
		req        func(t *testing.T) *http.Request
		wantStatus int
		wantError  string
		wantReason string
	}{
		{
			name:       "valid",
			req:        func(t *testing.T) *http.Request { return verifyTestRequest(t, signer, body) },
			wantStatus: http.StatusNoContent,
		},
		{
			name: "path rewritten after arrival",
			req: func(t *testing.T) *http.Request {
				r := verifyTestRequest(t, signer, body)
				orig := *r
				origURL := *r.URL
				orig.URL = &origURL
				r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig))
				r.URL.Path = "/index.php"
				return r
			},
			wantStatus: http.StatusNoContent,
		},
		{
			name: "tampered body",
			req: func(t *testing.T) *http.Request {
				r := verifyTestRequest(t, signer, body)
				r.Body = io.NopCloser(strings.NewReader(`{"password":"evil"}`))
				return r
			},
			wantStatus: http.StatusUnauthorized,
			wantError:  "invalid_signature",
			wantReason: "content digest mismatch",
		},
		{
			name: "tampered account",
			req: func(t *testing.T) *http.Request {
				r := verifyTestRequest(t, signer, body)
				r.Header.Set(httpsig.HeaderAccount, "mallory@example.com")
				return r
			},
			wantStatus: http.StatusUnauthorized,
			wantError:  "invalid_signature",
			wantReason: "invalid signature",
		},
		{
			name: "unsigned",
			req: func(t *testing.T) *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/api/reset-password", strings.NewReader(body))
				r.Header.Set(httpsig.HeaderAccount, "alice@example.com")
				return r
			},
			wantStatus: http.StatusUnauthorized,
			wantError:  "invalid_signature",
			wantReason: "no recovery signature",
		},
		{
			name: "body over 64 KiB",
			req: func(t *testing.T) *http.Request {
				return verifyTestRequest(t, signer, `{"password":"`+strings.Repeat("x", 64<<10)+`"}`)
			},
			wantStatus: http.StatusRequestEntityTooLarge,
			wantError:  "too_large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}
			logs := newVerifyTestHandler(t, h)
			next := &verifyNext{}
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, tt.req(t), next); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantError == "" {
				if !next.called || next.body != body || next.account != "alice@example.com" {
					t.Errorf("next got called=%v body=%q account=%q, want the body and account intact", next.called, next.body, next.account)
				}
				return
			}
			if next.called {
				t.Error("next was called for a refused request")
			}
			var got struct{ Error, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Error != tt.wantError || got.Message == "" {
				t.Errorf("body = %s (%v), want error %q and a message", w.Body, err, tt.wantError)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantReason == "" {
				return
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d log entries, want 1", len(entries))
			}
			logged, _ := entries[0].ContextMap()["error"].(string)
			if !strings.Contains(logged, tt.wantReason) {
				t.Errorf("logged error %q, want it to contain %q", logged, tt.wantReason)
			}
			for _, secret := range []string{base64.StdEncoding.EncodeToString(verifyTestKey), "N3w-s3cret", "evil"} {
				if strings.Contains(logged, secret) {
					t.Errorf("log %q contains %q", logged, secret)
				}
			}
		})
	}
}

func TestHandlerReplay(t *testing.T) {
	t.Parallel()
	signer, err := httpsig.NewHMACSigner("gw-replay", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := verifyTestRequest(t, signer, `{"password":"N3w-s3cret!"}`)
	send := func(h *Handler) int {
		replay := r.Clone(context.Background())
		replay.Body = io.NopCloser(strings.NewReader(`{"password":"N3w-s3cret!"}`))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, replay, &verifyNext{}); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	cfg := Handler{KeyID: "gw-replay", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}
	old := cfg
	_, unloadOld := loadVerifyTestHandler(t, &old)
	if code := send(&old); code != http.StatusNoContent {
		t.Fatalf("first request: status %d", code)
	}
	if code := send(&old); code != http.StatusUnauthorized {
		t.Errorf("replay: status %d, want 401", code)
	}

	// A reload provisions a new handler before cleaning up the old one; the
	// nonce cache must survive it.
	reloaded := cfg
	newVerifyTestHandler(t, &reloaded)
	unloadOld()
	if code := send(&reloaded); code != http.StatusUnauthorized {
		t.Errorf("replay after reload: status %d, want 401", code)
	}
}

func TestHandlerEd25519(t *testing.T) {
	t.Parallel()
	priv, err := httpsig.LoadEd25519PrivateKey("../httpsig/testdata/test-key-ed25519.pem")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := httpsig.NewEd25519Signer("gw-ed", priv, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{KeyID: "gw-ed", Ed25519PublicKey: "../httpsig/testdata/test-key-ed25519.pub.pem"}
	newVerifyTestHandler(t, h)
	form := url.Values{"password": {"N3w-s3cret!"}}.Encode()
	r := verifyTestRequest(t, signer, form)
	next := &verifyNext{}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusNoContent || next.body != form {
		t.Errorf("status %d, next body %q; want 204 and %q", w.Code, next.body, form)
	}
}

func TestHandlerValidate(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(verifyTestKey)
	tests := []struct {
		name string
		h    Handler
		want string // "" for valid
	}{
		{"hmac", Handler{KeyID: "gw1", HMACKey: key}, ""},
		{"ed25519", Handler{KeyID: "gw1", Ed25519PublicKey: "gw.pub.pem"}, ""},
		{"no key id", Handler{HMACKey: key}, "key_id: required"},
		{"no key", Handler{KeyID: "gw1"}, "exactly one of hmac_key and ed25519_public_key"},
		{"both keys", Handler{KeyID: "gw1", HMACKey: key, Ed25519PublicKey: "gw.pub.pem"}, "exactly one of hmac_key and ed25519_public_key"},
		{"negative skew", Handler{KeyID: "gw1", HMACKey: key, MaxSkew: caddy.Duration(-time.Second)}, "max_skew: -1s is negative"},
		{"a second key", Handler{KeyID: "gw1", HMACKey: key, Keys: []Key{{KeyID: "gw2", Ed25519PublicKey: "gw2.pub.pem"}}}, ""},
		{"second key without id", Handler{KeyID: "gw1", HMACKey: key, Keys: []Key{{HMACKey: key}}}, "key 1: key_id: required"},
		{"one key id twice", Handler{KeyID: "gw1", HMACKey: key, Keys: []Key{{KeyID: "gw1", HMACKey: key}}}, `key "gw1": key_id given twice`},
		{"second key without key", Handler{KeyID: "gw1", HMACKey: key, Keys: []Key{{KeyID: "gw2"}}}, `key "gw2": give exactly one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.h.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// TestHandlerKeyRotation walks a rotation of the gateway's key as
// the README tells it: the upstream adds the new key, the gateway switches,
// the upstream drops the old key. Every reset signed with a key the
// upstream holds at that moment passes; none fails in between.
func TestHandlerKeyRotation(t *testing.T) {
	t.Parallel()
	newKey := bytes.Repeat([]byte{0x42}, 64)
	oldSigner, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newSigner, err := httpsig.NewHMACSigner("gw2", newKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	status := func(h *Handler, s *httpsig.Signer) int {
		t.Helper()
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, verifyTestRequest(t, s, `{"password":"N3w-s3cret!"}`), &verifyNext{}); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	before := &Handler{KeyID: "gw1", HMACKey: b64(verifyTestKey)}
	newVerifyTestHandler(t, before)
	during := &Handler{KeyID: "gw1", HMACKey: b64(verifyTestKey), Keys: []Key{{KeyID: "gw2", HMACKey: b64(newKey)}}}
	newVerifyTestHandler(t, during)
	after := &Handler{KeyID: "gw2", HMACKey: b64(newKey)}
	newVerifyTestHandler(t, after)
	for _, step := range []struct {
		name   string
		h      *Handler
		signer *httpsig.Signer
		want   int
	}{
		{"before, old key", before, oldSigner, http.StatusNoContent},
		{"upstream holds both, gateway still on the old key", during, oldSigner, http.StatusNoContent},
		{"upstream holds both, gateway on the new key", during, newSigner, http.StatusNoContent},
		{"after, new key", after, newSigner, http.StatusNoContent},
		{"after, old key", after, oldSigner, http.StatusUnauthorized},
		{"before, new key", before, newSigner, http.StatusUnauthorized},
	} {
		if got := status(step.h, step.signer); got != step.want {
			t.Errorf("%s: status %d, want %d", step.name, got, step.want)
		}
	}
	// A request accepted under one key is a replay under the other too.
	r := verifyTestRequest(t, newSigner, `{"password":"N3w-s3cret!"}`)
	replay := r.Clone(r.Context())
	replay.Body = io.NopCloser(strings.NewReader(`{"password":"N3w-s3cret!"}`))
	for i, req := range []*http.Request{r, replay} {
		w := httptest.NewRecorder()
		if err := during.ServeHTTP(w, req, &verifyNext{}); err != nil {
			t.Fatal(err)
		}
		if want := []int{http.StatusNoContent, http.StatusUnauthorized}[i]; w.Code != want {
			t.Errorf("request %d: status %d, want %d", i+1, w.Code, want)
		}
	}
}

func TestHandlerProvision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    Handler
		want string // "" for success
	}{
		{"default skew", Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}, ""},
		{"invalid", Handler{KeyID: "gw1"}, "exactly one"},
		{"hmac key not base64", Handler{KeyID: "gw1", HMACKey: "not base64!"}, "hmac_key is not base64"},
		{"short hmac key", Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey[:32])}, "32 bytes"},
		{"missing public key file", Handler{KeyID: "gw1", Ed25519PublicKey: "testdata/none.pem"}, "ed25519_public_key"},
		{"private key as public key", Handler{KeyID: "gw1", Ed25519PublicKey: "../httpsig/testdata/test-key-ed25519.pem"}, "PUBLIC KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tt.h
			err := h.Provision(ctx)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				if h.MaxSkew != caddy.Duration(time.Minute) || h.verifier == nil {
					t.Errorf("after Provision: max_skew %v, verifier %v", time.Duration(h.MaxSkew), h.verifier)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Provision = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestHandlerNonceCacheFull(t *testing.T) {
	t.Parallel()
	signer, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}
	newVerifyTestHandler(t, h)
	nonces, err := httpsig.NewNonceCache(1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", HMACKey: verifyTestKey, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	if h.verifier, err = httpsig.NewVerifierSet(v); err != nil {
		t.Fatal(err)
	}
	const body = `{"password":"N3w-s3cret!"}`
	send := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, verifyTestRequest(t, signer, body), &verifyNext{}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := send(); w.Code != http.StatusNoContent {
		t.Fatalf("first request: status %d", w.Code)
	}
	// The first nonce holds the only slot until its window closes: a second
	// valid request cannot be remembered, so it is refused for now.
	w := send()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "60" || !strings.Contains(w.Body.String(), `"error":"unavailable"`) {
		t.Errorf("status %d, Retry-After %q, body %s; want 503, 60 and unavailable", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestHandlerBodyReadError(t *testing.T) {
	t.Parallel()
	h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}
	newVerifyTestHandler(t, h)
	r := httptest.NewRequest(http.MethodPost, "/api/reset-password", iotest.ErrReader(io.ErrUnexpectedEOF))
	next := &verifyNext{}
	err := h.ServeHTTP(httptest.NewRecorder(), r, next)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest || next.called {
		t.Errorf("ServeHTTP = %v, next called %v; want a 400 handler error", err, next.called)
	}
}

// TestExampleKeyOnlyOnThisMachine loads the verifier as Caddy does, in a
// server, with the examples' published key: it loads only when every
// address the server listens on is this machine's, as a rotation key too,
// and the refusal says what to do and quotes no key.
func TestExampleKeyOnlyOnThisMachine(t *testing.T) {
	t.Parallel()
	own := base64.StdEncoding.EncodeToString(verifyTestKey)
	tests := []struct {
		name   string
		listen string // JSON list; Validate binds none of them
		keys   string // the handler's key fields
		want   string // "" for success
	}{
		{"loopback", `["127.0.0.1:8081"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, ""},
		{"IPv6 loopback and localhost", `["[::1]:8081", "localhost:8082"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, ""},
		{"a Unix socket", `["unix//run/legacy-mail.sock"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, ""},
		{"every interface", `[":8081"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, "hmac_key is the example's"},
		{"a public address", `["192.0.2.10:8081"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, "hmac_key is the example's"},
		{"loopback and more", `["127.0.0.1:8081", "0.0.0.0:8082"]`, `"hmac_key": "` + examplekey.HMACKey + `"`, "hmac_key is the example's"},
		{"a rotation key", `[":8081"]`, `"hmac_key": "` + own + `", "keys": [{"key_id": "gw2", "hmac_key": "` + examplekey.HMACKey + `"}]`,
			`key "gw2": hmac_key is the example's`},
		{"a key of one's own", `[":8081"]`, `"hmac_key": "` + own + `"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := new(caddy.Config)
			err := json.Unmarshal([]byte(`{"apps": {"http": {"servers": {"upstream": {"listen": `+tt.listen+`,
				"automatic_https": {"disable": true},
				"routes": [{"handle": [{"handler": "sms_recovery_verify", "key_id": "gw1", `+tt.keys+`}]}]}}}}}`), cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			for _, part := range []string{"openssl rand -base64 64", "bind 127.0.0.1"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("the refusal does not say %q: %v", part, err)
				}
			}
			if strings.Contains(err.Error(), examplekey.HMACKey) {
				t.Errorf("the refusal quotes the key: %v", err)
			}
		})
	}

	// Outside a server nothing says who reaches it: refused.
	h := Handler{KeyID: "gw1", HMACKey: examplekey.HMACKey}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "hmac_key is the example's") {
		t.Errorf("Validate outside a server = %v, want the example key refused", err)
	}
}
