package module

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestPagesRefuseHiddenAccountCharacters: the account form applies the
// account rule of the JSON API. A name with invisible, direction-control
// or look-alike characters gets the account page again with 400 and a
// message saying so, is not echoed back, and costs nothing: no flow, no
// SMS, no share of the client's start limit.
func TestPagesRefuseHiddenAccountCharacters(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) {
		h.Limits = map[string]Limit{"start_ip": {Events: 1, Window: caddy.Duration(time.Hour)}}
	})
	b := e.browser()
	csrf := b.get(e.url("/")).field("csrf")
	tests := []struct{ name, account string }{
		{"zero width space", "al\u200bice@example.com"},
		{"right-to-left override", "\u202ealice@example.com"},
		{"left-to-right isolate", "\u2066alice@example.com\u2069"},
		{"soft hyphen", "al\u00adice@example.com"},
		{"byte order mark", "\ufeffalice@example.com"},
		{"kelvin sign", "\u212aelvin@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {tt.account}})
			p.want(t, http.StatusBadRequest, "That account name is too long, or holds a character an account name cannot have")
			if got := p.field("account"); got != "" {
				t.Errorf("the refused name is shown again: %+q", got)
			}
			if strings.ContainsAny(p.body, "\u200b\u202e\u2066\u2069\u00ad\ufeff\u212a") {
				t.Error("the page holds a character of the refused name")
			}
		})
	}
	// An empty name still asks for one.
	b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {" \u00a0 "}}).
		want(t, http.StatusBadRequest, "Enter the email address or user name of your account.")

	if n := len(e.messages()); n != 0 {
		t.Fatalf("refused names sent %d SMS", n)
	}
	// The client's one start is still there, and it is alice's.
	_, flow := e.startFlow(b, " ALICE@Example.com ")
	if m := e.waitMessages(1); m[0].To != "+31612345678" || !strings.Contains(m[0].Body, flow) {
		t.Fatalf("SMS %+v, want alice's code for flow %s", m[0], flow)
	}
	f, err := e.h.svc.Store.Flow(context.Background(), flow)
	if err != nil || f.Account != "alice@example.com" {
		t.Fatalf("flow = %+v, %v; want alice@example.com's", f, err)
	}
	// Once the queue has drained, alice's code is the only SMS: a refused
	// name queued none that went out late.
	e.close()
	if ms := e.messages(); len(ms) != 1 {
		t.Errorf("outbox has %d messages after the queue drained, want alice's code: %v", len(ms), ms)
	}
}

// TestPagesLookalikeAccountGetsADecoy: ALİCE (capital I with a dot) is not
// alice. The page answers as for any account, but the flow is a decoy for
// another name, and nothing is sent to alice's phone.
func TestPagesLookalikeAccountGetsADecoy(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	_, flow := e.startFlow(b, "ALİCE@example.com")
	f, err := e.h.svc.Store.Flow(context.Background(), flow)
	if err != nil {
		t.Fatal(err)
	}
	// A decoy carries the masked stand-in number it was given, never
	// alice's.
	if f.Account != "ali\u0307ce@example.com" || !f.Decoy || f.PhoneMasked == recovery.MaskPhone(pageTestPhone) {
		t.Fatalf("flow for %+q, decoy %v, phone %q; want a decoy for \"ali\\u0307ce@example.com\" without alice's phone", f.Account, f.Decoy, f.PhoneMasked)
	}
	e.close() // drains the queue: whatever the start queued has gone out
	if n := len(e.messages()); n != 0 {
		t.Fatalf("%d SMS sent for a look-alike of alice", n)
	}
}
