package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// generous lifts the limits a flood from a handful of test addresses would
// meet long before it fills a table, so that the tables are what is tried.
const generous = "ip_block 100000 1h 1h\n\t\tlimit verify_ip 100000 1h\n\t\tlimit start_ip 100000 1h\n\t\tlimit start_account 100000 1h\n\t\tlimit start_phone 100000 1h\n\t\tlimit sms_global 100000 1h"

// TestRightCodeAfterSecurityFlood fills a small security table with
// one-strike runs (one start and one wrong code for each of up to 400
// made-up accounts, from four addresses, each flow then spent; the starts
// past the room for their budgets are refused): alice's right code, whose
// account holds no record yet, still verifies, and no wrong code was
// refused for room.
func TestRightCodeAfterSecurityFlood(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback, Store: 102, Extra: "max_attempts 1\n\t\t" + generous})
	const me = "203.0.113.50"
	flow := c.startFrom(me, alice).str("flow")
	code := c.codeOf(flow)
	letGo := `caddy_sms_recovery_store_let_go_total{table="security"}`
	before := metricValue(t, metrics(t), letGo)
	struck := 0
	for i := range 400 {
		ip := fmt.Sprintf("198.51.100.%d", i%4+1)
		f := c.startFrom(ip, fmt.Sprintf("made-up-%d@example.com", i))
		if f.Status == http.StatusServiceUnavailable && f.Header.Get("Retry-After") != "" {
			continue // no room for another account's start budget
		}
		if f.Status != http.StatusAccepted {
			t.Fatalf("flood start %d: %d %s", i, f.Status, f.Raw)
		}
		struck++
		if a := c.verifyFrom(ip, f.str("flow"), "000000"); a.Status != http.StatusBadRequest {
			t.Fatalf("flood wrong code %d: %d %s, want 400 (a cheap run makes room)", i, a.Status, a.Raw)
		}
		if a := c.verifyFrom(ip, f.str("flow"), "000000"); a.Status != http.StatusGone {
			t.Fatalf("flood flow %d once spent: %d %s, want 410", i, a.Status, a.Raw)
		}
	}
	if struck < 2*102 {
		t.Fatalf("%d one-strike runs: under twice the table's 102", struck)
	}
	if after := metricValue(t, metrics(t), letGo); after-before < float64(struck-102) {
		t.Errorf("%s went from %v to %v, want at least %d more", letGo, before, after, struck-102)
	}
	if a := c.verifyFrom(me, flow, code); a.Status != http.StatusOK || a.str("reset_token") == "" {
		t.Fatalf("her right code after the flood: %d %s, want 200 and a token", a.Status, a.Raw)
	}
}

// TestRightCodeWhenLocksFillTheTable fills a small security table with
// blocks, which never go: 150 addresses each make one wrong code on one of
// 30 flows, and ip_block 1 blocks each. Alice's right code, from an address
// and for an account the table does not hold, still verifies; a wrong code
// that finds no room to be counted is refused with 503 and Retry-After, and
// the blocks hold.
func TestRightCodeWhenLocksFillTheTable(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback, Store: 103,
		Extra: "ip_block 1 1h 1h\n\t\tlockout 100000 1h 1m\n\t\tlimit verify_ip 100000 1h\n\t\tlimit start_ip 100000 1h\n\t\tlimit start_account 100000 1h\n\t\tlimit start_phone 100000 1h\n\t\tlimit sms_global 100000 1h"})
	const me = "203.0.113.51"
	flow := c.startFrom(me, alice).str("flow")
	code := c.codeOf(flow)
	full := 0
	for i := range 30 {
		f := c.startFrom("192.0.2.1", fmt.Sprintf("made-up-%d@example.com", i))
		if f.Status != http.StatusAccepted {
			t.Fatalf("flood start %d: %d %s", i, f.Status, f.Raw)
		}
		for j := range 5 {
			ip := fmt.Sprintf("198.51.%d.%d", 100+i, j+1)
			switch a := c.verifyFrom(ip, f.str("flow"), "000000"); a.Status {
			case http.StatusForbidden: // the wrong code blocked its address
			case http.StatusServiceUnavailable:
				if a.Header.Get("Retry-After") == "" || a.str("error") != "unavailable" {
					t.Fatalf("503 for a wrong code: %s %v", a.Raw, a.Header)
				}
				full++
			default:
				t.Fatalf("flood wrong code %d.%d: %d %s", i, j, a.Status, a.Raw)
			}
		}
	}
	if full == 0 {
		t.Fatal("150 blocks fit a table of 103: the test did not fill it")
	}
	if a := c.verifyFrom(me, flow, code); a.Status != http.StatusOK || a.str("reset_token") == "" {
		t.Fatalf("her right code in a table full of blocks: %d %s, want 200 and a token", a.Status, a.Raw)
	}
	if a := c.startFrom("198.51.100.1", alice); a.Status != http.StatusForbidden {
		t.Fatalf("the first block after the flood: %d %s, want it to hold", a.Status, a.Raw)
	}
}

// TestFlowTableFullRefusesNewStarts tries both orders on a flow table of
// 104. A person who started before a flood of one-flow addresses keeps her
// flow: the flood's starts are refused once the table is full, never her
// flow dropped. A person who starts after it is refused with 503 and
// Retry-After, and gets in as soon as a flow ends.
func TestFlowTableFullRefusesNewStarts(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback, Store: 104, Extra: generous})
	const me = "203.0.113.52"
	flow := c.startFrom(me, alice).str("flow")
	code := c.codeFor(1)
	refusedFlows := `caddy_sms_recovery_store_refused_total{table="flows"}`
	before := metricValue(t, metrics(t), refusedFlows)
	var flood []string
	refused := 0
	for i := range 300 {
		ip := fmt.Sprintf("198.18.%d.%d", i/200, i%200+1)
		if i%3 == 0 {
			ip = fmt.Sprintf("2001:db8:%x::1", i)
		}
		switch a := c.startFrom(ip, "bob@example.com"); a.Status {
		case http.StatusAccepted:
			flood = append(flood, a.str("flow"))
		case http.StatusServiceUnavailable:
			if a.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %s", a.Raw)
			}
			refused++
		default:
			t.Fatalf("flood start %d: %d %s", i, a.Status, a.Raw)
		}
	}
	if len(flood) != 103 || refused != 300-103 {
		t.Fatalf("flood: %d started, %d refused; want 103 and %d", len(flood), refused, 300-103)
	}
	if after := metricValue(t, metrics(t), refusedFlows); after-before != float64(refused) {
		t.Errorf("%s went from %v to %v, want %d more", refusedFlows, before, after, refused)
	}
	// One more start, after the flood: refused, not given her place.
	late := c.startFrom("203.0.113.53", alice)
	if late.Status != http.StatusServiceUnavailable || late.Header.Get("Retry-After") == "" {
		t.Fatalf("a start into a full table: %d %s, want 503 with Retry-After", late.Status, late.Raw)
	}
	if a := c.verifyFrom(me, flow, code); a.Status != http.StatusOK {
		t.Fatalf("her right code after the flood: %d %s, want 200", a.Status, a.Raw)
	}
	// Her flow ended: room for one more, the late person.
	late = c.startFrom("203.0.113.53", alice)
	if late.Status != http.StatusAccepted {
		t.Fatalf("a start once a flow ended: %d %s", late.Status, late.Raw)
	}
	if a := c.verifyFrom("203.0.113.53", late.str("flow"), c.codeOf(late.str("flow"))); a.Status != http.StatusOK {
		t.Fatalf("the late person's right code: %d %s", a.Status, a.Raw)
	}
	// Every flow the flood was told it had is still there.
	if a := c.verifyFrom("198.18.0.2", flood[0], "000000"); a.Status != http.StatusBadRequest {
		t.Fatalf("a flood flow after it all: %d %s, want 400 (a wrong code, not gone)", a.Status, a.Raw)
	}
}

// TestResendOfSpentFlow spends a flow's five attempts, then asks for a new
// code: 410, and no SMS goes out.
func TestResendOfSpentFlow(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			s := &site{Upstream: up.addr, Global: trustLoopback, Store: 106,
				Extra: "lockout 100 1h 30m\n\t\t" + generous}
			if backend == "redis" {
				s.Storage = redisStorage(t)
			}
			c := start(t, s)
			flow := c.startFrom("203.0.113.55", alice).str("flow")
			code := c.codeFor(1)
			for range 5 {
				if a := c.verifyFrom("203.0.113.55", flow, wrongCode(code)); a.Status != http.StatusBadRequest {
					t.Fatalf("wrong code: %d %s", a.Status, a.Raw)
				}
			}
			a := c.postFrom("203.0.113.55", "/recovery/resend", fmt.Sprintf(`{"flow":%q}`, flow))
			if a.Status != http.StatusGone || a.str("error") != "expired" {
				t.Fatalf("resend of a spent flow: %d %s, want 410 expired", a.Status, a.Raw)
			}
		})
	}
}
