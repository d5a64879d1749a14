package verify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
)

// redisVerifyHandler is the configuration of one verifier instance with
// its nonces on Redis at url under prefix.
func redisVerifyHandler(redisURL, prefix string) *Handler {
	return &Handler{
		KeyID:         "gw1",
		HMACKey:       base64.StdEncoding.EncodeToString(verifyTestKey),
		NonceStoreRaw: json.RawMessage(fmt.Sprintf(`{"store": "redis", "url": %q, "prefix": %q}`, redisURL, prefix)),
	}
}

// nonceTestBody is the body of every signed request of these tests.
const nonceTestBody = `{"password":"N3w-s3cret!"}`

// newSignedReset returns a request signed as the gateway forwards it.
func newSignedReset(t *testing.T) *http.Request {
	t.Helper()
	signer, err := httpsig.NewHMACSigner("gw1", verifyTestKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return verifyTestRequest(t, signer, nonceTestBody)
}

// sendCopy sends a copy of r, as an attacker who captured it would, and
// returns the answer.
func sendCopy(t *testing.T, h *Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(strings.NewReader(nonceTestBody))
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, c, &verifyNext{}); err != nil {
		t.Errorf("ServeHTTP: %v", err)
	}
	return w
}

// TestRedisNoncesAcrossInstances: two verifier instances, each provisioned
// in a context of its own with a Redis client of its own, share nothing but
// the server: a signed request accepted by one is refused by both after,
// and a third under another prefix does not see their nonces.
func TestRedisNoncesAcrossInstances(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t, redistest.Client(t))
	a, b := redisVerifyHandler(redistest.URL(), prefix), redisVerifyHandler(redistest.URL(), prefix)
	newVerifyTestHandler(t, a)
	newVerifyTestHandler(t, b)
	r := newSignedReset(t)
	if w := sendCopy(t, a, r); w.Code != http.StatusNoContent {
		t.Fatalf("A: first use: status %d %s", w.Code, w.Body)
	}
	for name, h := range map[string]*Handler{"B": b, "A": a} {
		if w := sendCopy(t, h, r); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: replay: status %d, want 401", name, w.Code)
		}
	}
	other := redisVerifyHandler(redistest.URL(), redistest.Prefix(t, redistest.Client(t)))
	newVerifyTestHandler(t, other)
	if w := sendCopy(t, other, r); w.Code != http.StatusNoContent {
		t.Errorf("a verifier under another prefix: status %d, want 204", w.Code)
	}
}

// TestRedisNoncesConcurrentReplays: one signed request sent many times at
// once to two instances passes exactly once.
func TestRedisNoncesConcurrentReplays(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t, redistest.Client(t))
	instances := []*Handler{redisVerifyHandler(redistest.URL(), prefix), redisVerifyHandler(redistest.URL(), prefix)}
	for _, h := range instances {
		newVerifyTestHandler(t, h)
	}
	for round := range 10 {
		r := newSignedReset(t)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			codes  = map[int]int{}
			starts = make(chan struct{})
		)
		const n = 16
		for i := range n {
			wg.Go(func() {
				<-starts
				code := sendCopy(t, instances[i%2], r).Code
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		close(starts)
		wg.Wait()
		if codes[http.StatusNoContent] != 1 || codes[http.StatusUnauthorized] != n-1 {
			t.Fatalf("round %d: answers by status %v, want one 204 and %d 401", round, codes, n-1)
		}
	}
}

// TestRedisNoncesAcrossRestart: every handler of the process unloaded (the
// in-process pool emptied), a new one provisioned: the replay of a request
// accepted before is still refused. Not parallel, so that no other test
// holds the pool while it checks that nothing stayed in this process.
func TestRedisNoncesAcrossRestart(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t))
	before := redisVerifyHandler(redistest.URL(), prefix)
	_, unload := loadVerifyTestHandler(t, before)
	r := newSignedReset(t)
	if w := sendCopy(t, before, r); w.Code != http.StatusNoContent {
		t.Fatalf("first use: status %d %s", w.Code, w.Body)
	}
	unload()
	if n, ok := noncePool.References(noncePoolKey); ok {
		t.Fatalf("the in-process nonce cache is still held (%d references) after every handler unloaded", n)
	}
	after := redisVerifyHandler(redistest.URL(), prefix)
	newVerifyTestHandler(t, after)
	if w := sendCopy(t, after, r); w.Code != http.StatusUnauthorized {
		t.Errorf("replay after the restart: status %d, want 401", w.Code)
	}
}

// TestMemoryNoncesPooled: the default store is the process's one cache,
// held while a handler uses it and freed with the last.
func TestMemoryNoncesPooled(t *testing.T) {
	a := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey)}
	b := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey), NonceStoreRaw: json.RawMessage(`{"store": "memory"}`)}
	_, unloadA := loadVerifyTestHandler(t, a)
	_, unloadB := loadVerifyTestHandler(t, b)
	if n, _ := noncePool.References(noncePoolKey); n != 2 {
		t.Errorf("%d references to the nonce cache, want 2", n)
	}
	r := newSignedReset(t)
	if w := sendCopy(t, a, r); w.Code != http.StatusNoContent {
		t.Fatalf("first use: status %d", w.Code)
	}
	if w := sendCopy(t, b, r); w.Code != http.StatusUnauthorized {
		t.Errorf("replay to another handler of the process: status %d, want 401", w.Code)
	}
	unloadA()
	unloadA() // Caddy may clean a module up twice; the reference goes once
	if n, _ := noncePool.References(noncePoolKey); n != 1 {
		t.Errorf("%d references after one handler unloaded, want 1", n)
	}
	unloadB()
	if _, ok := noncePool.References(noncePoolKey); ok {
		t.Error("the nonce cache outlived every handler")
	}
}

// TestRedisNoncesDown: while Redis does not answer, a valid signed request
// is refused with 503 and Retry-After (not 401, which would say the
// request is bad, nor 204), logged as an error, and not passed on; once
// Redis is back, the same request passes, since nothing recorded it.
func TestRedisNoncesDown(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t, redistest.Client(t))
	u, err := url.Parse(redistest.URL())
	if err != nil || u.Scheme != "redis" {
		t.Skipf("skipped: the outage test relays only redis:// URLs, and REDIS_URL is %s", redistest.Redacted())
	}
	px := tcpproxy.Start(t, u.Host)
	u.Host = px.Addr()
	h := redisVerifyHandler(u.String(), prefix)
	logs := newVerifyTestHandler(t, h)
	px.Cut()

	r := newSignedReset(t)
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(strings.NewReader(nonceTestBody))
	next := &verifyNext{}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, c, next); err != nil {
		t.Fatal(err)
	}
	var body struct{ Error, Message string }
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusServiceUnavailable || body.Error != "unavailable" || body.Message == "" || w.Header().Get("Retry-After") == "" {
		t.Errorf("during the outage: status %d, Retry-After %q, body %s; want 503 unavailable with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if next.called {
		t.Error("the request was passed on while its nonce could not be recorded")
	}
	entries := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("nonce store does not answer").All()
	if len(entries) != 1 {
		t.Errorf("%d error log entries about the nonce store, want 1: %v", len(entries), logs.All())
	}

	px.Restore()
	giveUp := time.After(10 * time.Second)
	for {
		relayed := px.NextRelay()
		w := sendCopy(t, h, r)
		if w.Code == http.StatusNoContent {
			break
		}
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("after the outage: status %d %s, want 204 (or 503 until the client reconnects)", w.Code, w.Body)
		}
		select {
		case <-relayed:
		case <-giveUp:
			t.Fatalf("after the outage: still %d 10s after Redis came back", w.Code)
		}
	}
	if w := sendCopy(t, h, r); w.Code != http.StatusUnauthorized {
		t.Errorf("replay after the outage: status %d, want 401", w.Code)
	}
}

// TestRedisNoncesDownAtLoad: a Redis that does not answer at load does not
// stop the config (the rest of the site must serve); signed requests get
// 503 until it answers.
func TestRedisNoncesDownAtLoad(t *testing.T) {
	t.Parallel()
	down := "redis://" + freeport.ClosedAddr(t) + "/0"
	h := redisVerifyHandler(down, "smsrec-verify-test:")
	newVerifyTestHandler(t, h)
	if w := sendCopy(t, h, newSignedReset(t)); w.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d %s, want 503", w.Code, w.Body)
	}
}

// TestRedisNoncesMisconfiguredAtLoad: a Redis that answers but refuses the
// URL's settings (here a database it does not have) stops the config,
// saying what to change, where one that is down only warns.
func TestRedisNoncesMisconfiguredAtLoad(t *testing.T) {
	t.Parallel()
	redistest.Client(t)
	u, err := url.Parse(redistest.URL())
	if err != nil || u.Scheme != "redis" {
		t.Skipf("skipping: the test changes the database of redis:// URLs only")
	}
	u.Path = "/99"
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := redisVerifyHandler(u.String(), "smsrec-verify-test:")
	err = h.Provision(ctx)
	if err == nil {
		t.Fatal("Provision with a database the server does not have succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "nonce_store redis: the server has no database") || !strings.Contains(msg, "url") ||
		strings.Contains(msg, "cleanup") {
		t.Errorf("Provision = %q, want it to say the database does not exist and name url", msg)
	}
}

// TestNonceStoreProvisionErrors: a bad nonce_store stops the load with a
// message that names it, and never shows a password from the URL.
func TestNonceStoreProvisionErrors(t *testing.T) {
	const secret = "hunter2-s3cret"
	t.Setenv("SMSREC_TEST_NONCE_URL", "")
	tests := []struct {
		name, raw, want string
	}{
		{"no url", `{"store": "redis"}`, "nonce_store redis: a url is required"},
		{"bad port", `{"store": "redis", "url": "redis://u:` + secret + `@127.0.0.1:port/0"}`, "nonce_store redis: parsing redis url"},
		{"bad database", `{"store": "redis", "url": "redis://:` + secret + `@127.0.0.1:6379/db"}`, "nonce_store redis: parsing redis url"},
		{"other scheme", `{"store": "redis", "url": "https://u:` + secret + `@127.0.0.1:6379"}`, `nonce_store redis: unsupported redis url scheme "https"`},
		{"unset variable", `{"store": "redis", "url": "{env.SMSREC_TEST_NONCE_URL}"}`, "nonce_store redis: url: placeholder {env.SMSREC_TEST_NONCE_URL} is empty"},
		{"unknown store", `{"store": "carrierpigeon"}`, "loading nonce_store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := &Handler{KeyID: "gw1", HMACKey: base64.StdEncoding.EncodeToString(verifyTestKey), NonceStoreRaw: json.RawMessage(tt.raw)}
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("Provision = %v, want an error containing %q and no password", err, tt.want)
			}
		})
	}
}

// TestNonceStoreURLPlaceholder: the URL is read from the environment like
// the other settings.
func TestNonceStoreURLPlaceholder(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t))
	t.Setenv("SMSREC_TEST_NONCE_URL", redistest.URL())
	a, b := redisVerifyHandler("{env.SMSREC_TEST_NONCE_URL}", prefix), redisVerifyHandler(redistest.URL(), prefix)
	newVerifyTestHandler(t, a)
	newVerifyTestHandler(t, b)
	r := newSignedReset(t)
	if w := sendCopy(t, a, r); w.Code != http.StatusNoContent {
		t.Fatalf("first use: status %d %s", w.Code, w.Body)
	}
	if w := sendCopy(t, b, r); w.Code != http.StatusUnauthorized {
		t.Errorf("replay to the verifier configured with the URL itself: status %d, want 401", w.Code)
	}
}
