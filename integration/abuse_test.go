package integration

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestStartLimitPerAccount(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	for _, account := range []string{alice, "nobody@example.com"} {
		t.Run(account, func(t *testing.T) {
			for i := range 3 {
				if a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, account)); a.Status != http.StatusAccepted {
					t.Fatalf("start %d: %d %s", i+1, a.Status, a.Raw)
				}
			}
			a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, account))
			if a.Status != http.StatusTooManyRequests || a.str("error") != "rate_limited" || a.num("retry_after") < 1 {
				t.Fatalf("4th start: %d %s", a.Status, a.Raw)
			}
			retry, err := strconv.Atoi(a.Header.Get("Retry-After"))
			if err != nil || retry < 1 || retry > 3600 {
				t.Errorf("Retry-After = %q", a.Header.Get("Retry-After"))
			}
			if a.Header.Get("RateLimit-Limit") != "3" || a.Header.Get("RateLimit-Remaining") != "0" || a.Header.Get("RateLimit-Reset") == "" {
				t.Errorf("RateLimit headers: %v", a.Header)
			}
		})
	}
}

func TestLockoutAndSupport(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Extra: "lockout 3 1h 30m"})
	flow := c.startFlow(alice)
	code := c.codeFor(1)
	for range 2 {
		if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code))); a.Status != http.StatusBadRequest {
			t.Fatalf("wrong code: %d %s", a.Status, a.Raw)
		}
	}
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
	if a.Status != http.StatusLocked {
		t.Fatalf("3rd wrong code: %d %s", a.Status, a.Raw)
	}
	for _, a := range []answer{
		c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code)),
		c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice)),
	} {
		if a.Status != http.StatusLocked || a.str("error") != "account_locked" || a.str("support") != "Call +1 555 0100" ||
			a.Header.Get("Retry-After") == "" || a.num("retry_after") < 1700 {
			t.Fatalf("while locked: %d %s %v", a.Status, a.Raw, a.Header)
		}
	}

	// Support lists the lock, masked unless asked for in clear, and lifts
	// it through Caddy's admin API.
	for query, want := range map[string]string{"": `"key":"a*****@example.com"`, "?clear=1": `"key":"alice@example.com"`} {
		res, err := http.Get(admin + "/sms-recovery/locks" + query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) || !strings.Contains(string(body), `"reason":"wrong_codes"`) {
			t.Fatalf("admin list%s: %d %s, want %s", query, res.StatusCode, body, want)
		}
	}
	liftAccount(t, alice)
	c.startFlow(alice)
}

func TestIPBlock(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Extra: "ip_block 3 1h 1h\n\t\tlimit start_account 100 1h"})
	for _, account := range []string{alice, "bob@example.com", "nobody@example.com"} {
		flow := c.startFlow(account)
		c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"999999"}`, flow))
	}
	for _, a := range []answer{
		c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice)),
		c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"999999"}`, strings.Repeat("A", 22))),
	} {
		if a.Status != http.StatusForbidden || a.str("error") != "ip_blocked" || a.Header.Get("Retry-After") == "" {
			t.Fatalf("blocked IP: %d %s", a.Status, a.Raw)
		}
	}
}

func TestMetricsAtCaddyEndpoint(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, SiteName: "Metrics Mail"})
	series := []string{
		`caddy_sms_recovery_events_total{event="flow_started",scope="",site="Metrics Mail"}`,
		`caddy_sms_recovery_events_total{event="wrong_code",scope="",site="Metrics Mail"}`,
		`caddy_sms_recovery_sms_total{kind="code",result="sent",site="Metrics Mail"}`,
	}
	before := metrics(t)
	flow := c.startFlow(alice)
	c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(c.codeFor(1))))
	after := metrics(t)
	for _, s := range series {
		if d := metricValue(t, after, s) - metricValue(t, before, s); d != 1 {
			t.Errorf("%s rose by %v, want 1", s, d)
		}
	}
}
