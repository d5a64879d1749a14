package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
)

func TestWholeFlowReachesUpstreamSigned(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})

	flow := c.startFlow("  Alice@Example.com ")
	msgs := c.messages(1)
	if len(msgs) != 1 || msgs[0].To != phoneNL {
		t.Fatalf("outbox = %+v, want one SMS to %s", msgs, phoneNL)
	}
	if link := gateway + "/recovery/?flow=" + flow; !strings.Contains(msgs[0].Body, link) {
		t.Errorf("SMS %q lacks the link %s", msgs[0].Body, link)
	}
	code := c.codeFor(1)

	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
	if a.Status != http.StatusBadRequest || a.str("error") != "invalid_code" || a.num("attempts_left") != 4 {
		t.Fatalf("wrong code: %d %s", a.Status, a.Raw)
	}
	a = c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code))
	if a.Status != http.StatusOK || a.str("reset_token") == "" || a.num("expires_in") != 600 {
		t.Fatalf("verify: %d %s", a.Status, a.Raw)
	}
	token := a.str("reset_token")

	// Headers a client forges never reach the upstream.
	a = c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, token),
		"X-Recovery-Account", "root@example.com", "Signature", "recovery=:AAAA:")
	if a.Status != http.StatusOK || a.str("changed") != alice {
		t.Fatalf("reset: %d %s", a.Status, a.Raw)
	}
	got := up.got()
	if len(got) != 1 {
		t.Fatalf("upstream got %d resets, want 1", len(got))
	}
	if got[0].account != alice || got[0].path != "/api/reset-password" || got[0].body != password {
		t.Errorf("upstream got %+v", got[0])
	}
	if strings.Contains(got[0].body, token) {
		t.Error("the reset token reached the upstream")
	}

	a = c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"again"}`, token))
	if a.Status != http.StatusUnauthorized || a.str("error") != "invalid_token" {
		t.Fatalf("second reset: %d %s", a.Status, a.Raw)
	}
	if n := len(up.got()); n != 1 {
		t.Fatalf("upstream got %d resets after a replay, want 1", n)
	}
	// The phone hears that the password changed.
	if msgs := c.messages(2); len(msgs) != 2 || !strings.Contains(msgs[1].Body, "+1 555 0100") {
		t.Errorf("no notice after the reset: %+v", msgs)
	}
}

func TestClientSignatureHeadersAreStrippedEverywhere(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	req, _ := http.NewRequest(http.MethodGet, gateway+"/inbox", nil)
	for _, h := range []string{"Signature", "Signature-Input", "Content-Digest", "X-Recovery-Account"} {
		req.Header.Set(h, "forged")
	}
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.plain) != 1 {
		t.Fatalf("upstream saw %d plain requests", len(up.plain))
	}
	for _, h := range []string{"Signature", "Signature-Input", "Content-Digest", "X-Recovery-Account"} {
		if v := up.plain[0].Get(h); v != "" {
			t.Errorf("%s: %q reached the upstream", h, v)
		}
	}
}

func TestSameAnswerForUnknownAccounts(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	var shapes []string
	for _, account := range []string{alice, "nobody@example.com"} {
		a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, account))
		if a.Status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", account, a.Status, a.Raw)
		}
		shapes = append(shapes, fmt.Sprintf("%d %d %v", len(a.str("flow")), int(a.num("expires_in")), len(a.Body)))
	}
	if shapes[0] != shapes[1] {
		t.Fatalf("answers differ: %q vs %q", shapes[0], shapes[1])
	}
}

func TestBadInput(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr}
	c := start(t, s)
	flow := c.startFlow(alice)
	code := c.codeFor(1)
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"broken JSON", "/recovery/start", `{"account":`, 400, "invalid_request"},
		{"wrong type", "/recovery/start", `{"account":42}`, 400, "invalid_request"},
		{"empty account", "/recovery/start", `{"account":"  "}`, 400, "invalid_request"},
		{"long account", "/recovery/start", fmt.Sprintf(`{"account":%q}`, strings.Repeat("a", 255)), 400, "invalid_request"},
		{"over 64 KiB", "/recovery/start", fmt.Sprintf(`{"account":%q}`, strings.Repeat("a", 70<<10)), 413, "too_large"},
		{"letters in code", "/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"12345a"}`, flow), 400, "invalid_request"},
		{"unknown flow", "/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"123456"}`, strings.Repeat("A", 22)), 410, "expired"},
		{"unknown token", "/recovery/reset", fmt.Sprintf(`{"reset_token":%q}`, strings.Repeat("A", 43)), 401, "invalid_token"},
		{"unknown route", "/recovery/nope", `{}`, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := c.post(tc.path, tc.body)
			if a.Status != tc.status || a.str("error") != tc.code || a.str("message") == "" {
				t.Errorf("%d %s, want %d %s", a.Status, a.Raw, tc.status, tc.code)
			}
		})
	}
	// None of it cost the flow an attempt.
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
	if a.num("attempts_left") != 4 {
		t.Fatalf("after bad input: %s, want 4 attempts left", a.Raw)
	}
	// Once the queue has drained, the outbox holds the flow's code alone:
	// no bad request queued an SMS that went out late.
	if n := len(drainSMS(t, c, s)); n != 1 {
		t.Errorf("%d SMS sent, want 1", n)
	}
}

func TestConcurrentWrongGuesses(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Extra: "limit verify_ip 1000 1h\n\t\tlockout 1000 1h 1h\n\t\tip_block 1000 1h 1h"})
	flow := c.startFlow(alice)
	code := c.codeFor(1)
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
			mu.Lock()
			statuses[a.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[400] != 5 || statuses[410] != 195 {
		t.Fatalf("statuses %v, want 5 × 400 and 195 × 410", statuses)
	}
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code))
	if a.Status != http.StatusGone {
		t.Fatalf("right code after the guesses: %d %s", a.Status, a.Raw)
	}
}

func TestConcurrentResetsReachUpstreamOnce(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	flow := c.startFlow(alice)
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, c.codeFor(1)))
	token := a.str("reset_token")
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, token))
			switch a.Status {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusUnauthorized:
				refused.Add(1)
			default:
				t.Errorf("reset: %d %s", a.Status, a.Raw)
			}
		}()
	}
	wg.Wait()
	if n := len(up.got()); n != 1 || ok.Load() != 1 || refused.Load() != 49 {
		t.Fatalf("upstream got %d resets; %d ok, %d refused; want 1, 1, 49", n, ok.Load(), refused.Load())
	}
}

func TestFlowSurvivesReload(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr}
	c := start(t, s)
	flow := c.startFlow(alice)
	code := c.codeFor(1)

	s.SiteName = "Example Mail, reloaded"
	reload(t, *s)
	c.http.CloseIdleConnections() // the old server closes its connections

	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code))
	if a.Status != http.StatusOK {
		t.Fatalf("verify after reload: %d %s", a.Status, a.Raw)
	}
	a = c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, a.str("reset_token")))
	if a.Status != http.StatusOK {
		t.Fatalf("reset after reload: %d %s", a.Status, a.Raw)
	}
}

func TestUpstreamDownKeepsToken(t *testing.T) {
	// The upstream sits behind a proxy that is cut: nothing answers there,
	// and its port stays taken, so nothing else can take it meanwhile.
	up := startUpstream(t, "127.0.0.1:0")
	proxy := tcpproxy.Start(t, up.addr)
	proxy.Cut()

	c := start(t, &site{Upstream: proxy.Addr()})
	flow := c.startFlow(alice)
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, c.codeFor(1)))
	token := a.str("reset_token")
	body := fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, token)

	a = c.post("/recovery/reset", body)
	if a.Status != http.StatusBadGateway || a.str("error") != "upstream_unavailable" {
		t.Fatalf("reset with the upstream down: %d %s", a.Status, a.Raw)
	}

	up.mu.Lock()
	up.status = http.StatusInternalServerError
	up.mu.Unlock()
	proxy.Restore()
	a = c.post("/recovery/reset", body)
	if a.Status != http.StatusInternalServerError {
		t.Fatalf("reset with the upstream failing: %d %s", a.Status, a.Raw)
	}

	up.mu.Lock()
	up.status = http.StatusOK
	up.mu.Unlock()
	a = c.post("/recovery/reset", body)
	if a.Status != http.StatusOK || len(up.got()) != 2 {
		t.Fatalf("reset once the upstream is back: %d %s (%d resets)", a.Status, a.Raw, len(up.got()))
	}
}
