package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// accountPhones is the directory of the account tests: alice, bob and
// kelvin, each with a phone of their own.
const (
	phoneKelvin   = "+31612345670"
	accountPhones = `{"alice@example.com": "+31612345678", "bob@example.com": {"phone": "+4915123456789", "lang": "de"}, "kelvin@example.com": "+31612345670"}`
)

// startBody is the JSON body of /start for account, whatever it holds.
func startBody(t *testing.T, account string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"account": account})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// drainSMS reloads the site with another outbox. The old SMS queue is then
// drained before the reload returns, so the old outbox holds every message
// the gateway took before it: what drainSMS returns is all that was ever
// sent, not what happened to arrive in time.
func drainSMS(t *testing.T, c *client, s *site) []outboxLine {
	t.Helper()
	old := s.Outbox
	s.Outbox = newOutbox(t)
	reload(t, *s)
	c.http.CloseIdleConnections() // the old server closes its connections
	c.outbox = s.Outbox
	return (&client{t: t, outbox: old}).messages(0)
}

// TestUpstreamIsToldTheCanonicalAccount: whichever spelling of an account
// a person types, the upstream is told the directory's own key.
func TestUpstreamIsToldTheCanonicalAccount(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	for i, typed := range []string{" ALICE@Example.com ", "ＡＬＩＣＥ@example.com"} {
		flow := c.post("/recovery/start", startBody(t, typed)).str("flow")
		to, code := c.codeForFlow(flow)
		if to != phoneNL {
			t.Fatalf("%+q: the code for flow %s went to %s, want alice's %s", typed, flow, to, phoneNL)
		}
		a := c.post("/recovery/verify", `{"flow":"`+flow+`","code":"`+code+`"}`)
		if a.Status != http.StatusOK {
			t.Fatalf("%+q: verify: %d %s", typed, a.Status, a.Raw)
		}
		a = c.post("/recovery/reset", `{"reset_token":"`+a.str("reset_token")+`","password":"N3w-s3cret-passw0rd!"}`)
		if a.Status != http.StatusOK || a.str("changed") != alice {
			t.Fatalf("%+q: reset: %d %s", typed, a.Status, a.Raw)
		}
		got := up.got()
		if len(got) != i+1 {
			t.Fatalf("%+q: upstream got %d resets, want %d", typed, len(got), i+1)
		}
		if h := got[i].header.Get("X-Recovery-Account"); h != alice || got[i].account != alice {
			t.Errorf("%+q: upstream was told X-Recovery-Account %+q (signed: %+q), want %q", typed, h, got[i].account, alice)
		}
	}
}

// TestLookalikeAccountsReachNobody: names that imitate an account with
// invisible, direction-control or look-alike characters are refused with
// 400 and spend nothing; ALİCE, a distinct account under RFC 8265, gets a
// decoy flow. None of them sends an SMS to alice or kelvin or anybody, and
// nothing reaches the upstream.
func TestLookalikeAccountsReachNobody(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr, Phones: accountPhones, Extra: "limit start_ip 3 1h"}
	c := start(t, s)

	refused := []struct{ name, account string }{
		{"zero width space", "al\u200bice@example.com"},
		{"zero width joiner", "alice\u200d@example.com"},
		{"word joiner", "al\u2060ice@example.com"},
		{"byte order mark", "\ufeffalice@example.com"},
		{"soft hyphen", "al\u00adice@example.com"},
		{"right-to-left override", "\u202ealice@example.com"},
		{"left-to-right mark", "alice@example.com\u200e"},
		{"first strong isolate", "\u2068alice@example.com\u2069"},
		{"arabic letter mark", "\u061calice@example.com"},
		{"kelvin sign", "\u212aelvin@example.com"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			a := c.post("/recovery/start", startBody(t, tt.account))
			if a.Status != http.StatusBadRequest || a.str("error") != "invalid_request" || a.str("message") == "" {
				t.Errorf("start %+q: %d %s, want 400 invalid_request", tt.account, a.Status, a.Raw)
			}
		})
	}

	decoy := c.post("/recovery/start", startBody(t, "ALİCE@example.com"))
	if decoy.Status != http.StatusAccepted || len(decoy.str("flow")) != 22 || decoy.num("expires_in") != 300 {
		t.Fatalf("start ALİCE: %d %s, want 202 with a flow like any account's", decoy.Status, decoy.Raw)
	}
	a := c.post("/recovery/verify", `{"flow":"`+decoy.str("flow")+`","code":"000000"}`)
	if a.Status != http.StatusBadRequest || a.num("attempts_left") != 4 {
		t.Errorf("verify ALİCE's flow: %d %s, want 400 invalid_code with 4 attempts left", a.Status, a.Raw)
	}

	// The refused names spent none of the client's three starts: the decoy
	// took one, alice and kelvin the others.
	flowAlice := c.startFlow(alice)
	flowKelvin := c.startFlow("kelvin@example.com")
	if a := c.post("/recovery/start", startBody(t, "bob@example.com")); a.Status != http.StatusTooManyRequests {
		t.Errorf("fourth start: %d %s, want 429", a.Status, a.Raw)
	}

	sent := drainSMS(t, c, s)
	if len(sent) != 2 || sent[0].To == sent[1].To {
		t.Fatalf("SMS sent: %+v; want exactly one to alice and one to kelvin", sent)
	}
	for _, m := range sent {
		switch {
		case m.To == phoneNL && strings.Contains(m.Body, "?flow="+flowAlice):
		case m.To == phoneKelvin && strings.Contains(m.Body, "?flow="+flowKelvin):
		default:
			t.Errorf("SMS to %s is not for the flow its owner started: %q", m.To, m.Body)
		}
	}
	if got := up.got(); len(got) != 0 {
		t.Errorf("the upstream got %d resets: %+v", len(got), got)
	}
}
