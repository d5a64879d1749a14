package instances

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
)

// TestFlowAcrossInstances: state lives in Redis, so any instance can carry
// on a flow another one began, and a reset token is spent once across all.
func TestFlowAcrossInstances(t *testing.T) {
	needRedis(t)
	d := newDeployment(t)
	nodes := d.start(t, nodeSpec{slot: slotA}, nodeSpec{slot: slotB})
	a, b := nodes[0], nodes[1]

	tests := []struct {
		name                 string
		account              string
		start, verify, spend *instance
		other                *instance // the instance that must not send the SMS
	}{
		{name: "start on A, verify on B, reset on A", account: alice, start: a, verify: b, spend: a, other: b},
		{name: "start on B, verify on A, reset on B", account: bob, start: b, verify: a, spend: b, other: a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flow := tt.start.startFlow(t, tt.account)
			code := tt.start.codeFor(t, flow)
			if _, sent := tt.other.codes(t)[flow]; sent {
				t.Errorf("instance %s also sent an SMS for the flow", tt.other.name)
			}

			token := tt.verify.verify(t, flow, code)
			tt.spend.reset(t, token, tt.account)

			got := d.upstream.resetsFor(tt.account)
			if len(got) != 1 {
				t.Fatalf("upstream got %d signed resets for %s, want 1", len(got), tt.account)
			}
			if want := "{" + newPassword + "}"; got[0].body != want {
				t.Errorf("upstream got body %s, want %s (without the token)", got[0].body, want)
			}

			// Spent and consumed everywhere.
			for _, n := range []*instance{a, b} {
				if ans := n.post(t, "/recovery/reset", resetBody(token)); ans.Status != http.StatusUnauthorized || ans.str("error") != "invalid_token" {
					t.Errorf("instance %s: reset with the spent token = %v, want 401 invalid_token", n.name, ans)
				}
				if ans := n.post(t, "/recovery/verify", verifyBody(flow, code)); ans.Status != http.StatusGone {
					t.Errorf("instance %s: verify of the used flow = %v, want 410", n.name, ans)
				}
			}
			if got := d.upstream.resetsFor(tt.account); len(got) != 1 {
				t.Errorf("upstream got %d signed resets for %s after the replays, want 1", len(got), tt.account)
			}
		})
	}

	t.Run("one token spent on both at once reaches the upstream once", func(t *testing.T) {
		flow := a.startFlow(t, carol)
		token := b.verify(t, flow, a.codeFor(t, flow))
		var (
			wg      sync.WaitGroup
			answers [2]answer
			errs    [2]error
		)
		for i, n := range []*instance{a, b} {
			wg.Go(func() { answers[i], errs[i] = n.do("/recovery/reset", resetBody(token)) })
		}
		wg.Wait()
		ok := 0
		for i, ans := range answers {
			switch {
			case errs[i] != nil:
				t.Fatalf("reset %d: %v", i, errs[i])
			case ans.Status == http.StatusOK:
				ok++
			case ans.Status != http.StatusUnauthorized:
				t.Errorf("reset %d = %v, want 200 or 401", i, ans)
			}
		}
		if ok != 1 {
			t.Errorf("%d of the two concurrent resets succeeded, want 1: %v, %v", ok, answers[0], answers[1])
		}
		if got := d.upstream.resetsFor(carol); len(got) != 1 {
			t.Errorf("upstream got %d signed resets for %s, want 1", len(got), carol)
		}
	})

	if r := d.upstream.refusals(); len(r) > 0 {
		t.Errorf("upstream refused requests: %v", r)
	}
}

// TestStartLimitAcrossInstances: a per-account limit counts the starts
// made to every instance.
func TestStartLimitAcrossInstances(t *testing.T) {
	needRedis(t)
	d := newDeployment(t)
	// Only start_account can bind here: the other start limits are far off.
	limits := `limit start_account 3 1h
		limit start_ip 1000 1h
		limit start_phone 1000 1h`
	nodes := d.start(t, nodeSpec{slot: slotA, extra: limits}, nodeSpec{slot: slotB, extra: limits})
	a, b := nodes[0], nodes[1]

	steps := []struct {
		name    string
		node    *instance
		account string
		want    int
	}{
		{"1st start on A", a, alice, http.StatusAccepted},
		{"2nd start on A", a, alice, http.StatusAccepted},
		{"3rd start on B", b, alice, http.StatusAccepted},
		{"4th start on A", a, alice, http.StatusTooManyRequests},
		{"5th start on B", b, alice, http.StatusTooManyRequests},
		{"another account on B", b, bob, http.StatusAccepted},
	}
	for _, s := range steps {
		ans := s.node.post(t, "/recovery/start", startBody(s.account))
		if ans.Status != s.want {
			t.Fatalf("%s: %v, want %d", s.name, ans, s.want)
		}
		if s.want != http.StatusTooManyRequests {
			continue
		}
		secs := ans.retryAfter()
		if secs < 1 || secs > 3600 {
			t.Errorf("%s: Retry-After %q, want 1..3600 seconds", s.name, ans.Header.Get("Retry-After"))
		}
		if ans.str("error") != "rate_limited" || ans.Body["retry_after"] != float64(secs) {
			t.Errorf("%s: body %s, want error rate_limited and retry_after %d", s.name, ans.Raw, secs)
		}
		if got := ans.Header.Get("RateLimit-Limit"); got != "3" {
			t.Errorf("%s: RateLimit-Limit %q, want 3 (the start_account limit)", s.name, got)
		}
	}
}

// relayedRedis returns a relay to the Redis server under test, which the
// test can cut and restore, and the server's URL through it. It skips the
// test when Redis does not answer or is not reached by a redis:// URL.
func relayedRedis(t *testing.T) (*tcpproxy.Proxy, string) {
	t.Helper()
	needRedis(t)
	u, err := url.Parse(redistest.URL())
	if err != nil || u.Scheme != "redis" {
		t.Skipf("skipped: the outage test relays only redis:// URLs, and REDIS_URL is %s", redistest.Redacted())
	}
	px := tcpproxy.Start(t, u.Host)
	u.Host = px.Addr()
	return px, u.String()
}

// TestRedisOutage cuts one instance off Redis: its recovery routes fail
// closed, quickly, with 503 and Retry-After; its other routes keep working;
// and once Redis is back it serves flows again without a restart, including
// those begun before the outage.
func TestRedisOutage(t *testing.T) {
	px, redisURL := relayedRedis(t)
	d := newDeployment(t)
	// Limits far off, so that retries after the outage are not refused.
	limits := `limit start_account 1000 1h
		limit start_phone 1000 1h
		limit start_ip 1000 1h`
	a := d.start(t, nodeSpec{slot: slotA, redis: redisURL, extra: limits})[0]

	// Before: one flow verified (its token is spent after the outage) and
	// one started (it is verified after the outage).
	flow1 := a.startFlow(t, alice)
	token1 := a.verify(t, flow1, a.codeFor(t, flow1))
	flow2 := a.startFlow(t, bob)
	code2 := a.codeFor(t, flow2)

	px.Cut()

	routes := []struct{ path, body string }{
		{"/recovery/start", startBody(carol)},
		{"/recovery/resend", flowBody(flow2)},
		{"/recovery/verify", verifyBody(flow2, code2)},
		{"/recovery/reset", resetBody(token1)},
	}
	// failsClosed checks one answer of a recovery route during the outage.
	const bound = 5 * time.Second
	failsClosed := func(ans answer) error {
		switch {
		case ans.Status != http.StatusServiceUnavailable || ans.str("error") != "unavailable":
			return fmt.Errorf("answer %v, want 503 unavailable", ans)
		case ans.retryAfter() < 1:
			return fmt.Errorf("Retry-After %q, want a number of seconds", ans.Header.Get("Retry-After"))
		case ans.Elapsed > bound:
			return fmt.Errorf("answered in %v, want well under %v", ans.Elapsed, bound)
		}
		return nil
	}
	for _, r := range routes {
		ans := a.post(t, r.path, r.body)
		if err := failsClosed(ans); err != nil {
			t.Errorf("%s during the outage: %v", r.path, err)
		}
		t.Logf("%s during the outage: %d in %v", r.path, ans.Status, ans.Elapsed.Round(time.Microsecond))
	}
	if status, body := a.get(t, "/health"); status != http.StatusOK || body != "ok" {
		t.Errorf("/health during the outage = %d %q, want 200 ok", status, body)
	}

	// A burst, ten at a time, over every route: each still fails closed.
	const burst, workers = 50, 10
	var (
		mu      sync.Mutex
		slowest time.Duration
		total   time.Duration
		wg      sync.WaitGroup
		next    = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				r := routes[i%len(routes)]
				ans, err := a.do(r.path, r.body)
				if err == nil {
					err = failsClosed(ans)
				}
				mu.Lock()
				if err != nil {
					t.Errorf("burst request %d, %s: %v", i, r.path, err)
				}
				slowest, total = max(slowest, ans.Elapsed), total+ans.Elapsed
				mu.Unlock()
			}
		})
	}
	for i := range burst {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("burst of %d during the outage: mean %v, slowest %v", burst, (total / burst).Round(time.Microsecond), slowest.Round(time.Microsecond))
	if status, _ := a.get(t, "/health"); status != http.StatusOK {
		t.Errorf("/health after the burst = %d, want 200", status)
	}

	px.Restore()
	// The client may wait for its next dial probe before it tries Redis
	// again, so the first starts after the outage can still fail closed.
	restored := time.Now()
	var flow3 string
	giveUp := time.After(10 * time.Second)
	for attempts := 1; ; attempts++ {
		relayed := px.NextRelay() // before the try, so its own dial counts
		ans := a.post(t, "/recovery/start", startBody(carol))
		if ans.Status == http.StatusAccepted {
			flow3 = ans.str("flow")
			t.Logf("first start after the outage succeeded %v after restore, at attempt %d", time.Since(restored).Round(time.Millisecond), attempts)
			break
		}
		if err := failsClosed(ans); err != nil {
			t.Fatalf("start after the outage: %v (last answer %v)", err, ans)
		}
		// Try again once the instance has reached Redis through the proxy.
		select {
		case <-relayed:
		case <-giveUp:
			t.Fatalf("start after the outage: still %v 10s after restore", ans)
		}
	}

	a.reset(t, token1, alice)
	a.verify(t, flow2, code2)
	a.reset(t, a.verify(t, flow3, a.codeFor(t, flow3)), carol)
	for _, account := range []string{alice, carol} {
		if got := d.upstream.resetsFor(account); len(got) != 1 {
			t.Errorf("upstream got %d signed resets for %s, want 1", len(got), account)
		}
	}
	t.Logf("instance log: %d raw go-redis lines, %d through Caddy's logger, %d \"recovery request failed\" lines",
		a.logCount("\nredis: "), a.logCount(`"logger":"http.handlers.sms_recovery.redis"`), a.logCount("recovery request failed"))
}

// TestStartsWhileRedisIsDown: an instance that loads its config while
// Redis is unreachable still serves the site, fails its recovery routes
// closed, and serves flows once Redis answers.
func TestStartsWhileRedisIsDown(t *testing.T) {
	px, redisURL := relayedRedis(t)
	px.Cut()
	d := newDeployment(t)
	a := d.start(t, nodeSpec{slot: slotA, redis: redisURL})[0]

	ans := a.post(t, "/recovery/start", startBody(alice))
	if ans.Status != http.StatusServiceUnavailable || ans.retryAfter() < 1 {
		t.Errorf("start while Redis is down = %v, Retry-After %q; want 503 with Retry-After", ans, ans.Header.Get("Retry-After"))
	}
	px.Restore()
	giveUp := time.After(10 * time.Second)
	for {
		relayed := px.NextRelay() // before the try, so its own dial counts
		ans = a.post(t, "/recovery/start", startBody(alice))
		if ans.Status == http.StatusAccepted {
			break
		}
		// Try again once the instance has reached Redis through the proxy.
		select {
		case <-relayed:
			continue
		case <-giveUp:
		}
		break
	}
	if ans.Status != http.StatusAccepted {
		t.Fatalf("start once Redis is back = %v, want 202", ans)
	}
	flow := ans.str("flow")
	a.reset(t, a.verify(t, flow, a.codeFor(t, flow)), alice)
	if got := d.upstream.resetsFor(alice); len(got) != 1 {
		t.Errorf("upstream got %d signed resets, want 1", len(got))
	}
}

// TestRedisStorageNeedsSecret: instances that share Redis must hash codes
// and tokens with the same secret, so a config with redis storage and no
// secret adapts but is refused at load, naming the directive. Loading
// does not need Redis to answer.
func TestRedisStorageNeedsSecret(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	// validate does not listen, but the site needs a port: take one that
	// nothing else can have while the test runs.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	port := hold.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	phonesFile := filepath.Join(dir, "phones.json")
	if err := os.WriteFile(phonesFile, []byte(phones), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		secret  string
		wantErr string // "" for a valid config
	}{
		{name: "with a secret", secret: "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		{name: "without a secret", wantErr: "secret: required with redis storage"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			config := filepath.Join(dir, fmt.Sprintf("Caddyfile%d", i))
			caddyfile := fmt.Sprintf(`http://localhost:%d {
	sms_recovery {
		directory file %q
		sms outbox %q
		%s
		storage redis redis://127.0.0.1:1/0
		forward {
			key_id gw1
			hmac_key %s
		}
	}
}
`, port, phonesFile, filepath.Join(dir, "outbox.jsonl"), tt.secret, strings.Repeat("A", 88))
			if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			if out, err := caddy(ctx, "adapt", "--config", config, "--adapter", "caddyfile"); err != nil {
				t.Fatalf("caddy adapt: %v\n%s", err, out)
			}
			out, err := caddy(ctx, "validate", "--config", config, "--adapter", "caddyfile")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("caddy validate: %v\n%s", err, out)
			case tt.wantErr != "" && err == nil:
				t.Errorf("caddy validate succeeded, want an error naming %q:\n%s", tt.wantErr, out)
			case tt.wantErr != "" && !strings.Contains(out, tt.wantErr):
				t.Errorf("caddy validate said:\n%s\nwant it to say %q", out, tt.wantErr)
			}
		})
	}
}

// TestTraceAcrossInstances: a flow started on A and guessed at on B files
// its events under one reference in Redis, and support reading it through
// either instance's admin API sees both instances' part.
func TestTraceAcrossInstances(t *testing.T) {
	needRedis(t)
	d := newDeployment(t)
	nodes := d.start(t, nodeSpec{slot: slotA}, nodeSpec{slot: slotB})
	a, b := nodes[0], nodes[1]

	flow := a.startFlow(t, alice)
	code := a.codeFor(t, flow)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	ans := b.post(t, "/recovery/verify", verifyBody(flow, wrong))
	ref := ans.str("reference")
	if ans.Status != http.StatusBadRequest || ref == "" {
		t.Fatalf("wrong code on B = %v, want 400 with a reference", ans)
	}
	trace := func(n *instance) string {
		t.Helper()
		resp, err := n.client.Get(n.admin + "/sms-recovery/trace/" + ref)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body strings.Builder
		if _, err := io.Copy(&body, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("trace %s on %s: %d %s", ref, n.name, resp.StatusCode, body.String())
		}
		return body.String()
	}
	// Each instance writes what it saw before it answers a trace: read
	// through A, then through B, which then holds both parts.
	trace(a)
	got := trace(b)
	for _, want := range []string{`"event":"flow_started"`, `"event":"wrong_code"`, `"status":400`} {
		if !strings.Contains(got, want) {
			t.Errorf("trace through B lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, code) || strings.Contains(got, flow) {
		t.Errorf("trace holds the code or the flow ID: %s", got)
	}
}
