package module

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"
)

// TestLogsHoldNoSecrets runs every kind of flow through two gateways, one
// texting through an outbox and one through a MessageBird that refuses the
// message, and checks every log line and Caddy event they produce: none may
// hold a code, a reset token, the password, a full phone number, a flow ID
// or (log_accounts being hashed by default) an account, while the masked
// phone and the security events must be there.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		alice    = "alice@example.com"
		bob      = "bob@example.com"
		carol    = "carol@example.com"
		dave     = "dave@example.com"
		erin     = "erin@example.com"
		password = "N3w-s3cret!pw-in-logs"
		masked   = "+31*****678"
	)
	phones := map[string]string{
		alice: "+31612345678",
		bob:   "+31612345671",
		carol: "+31612345672",
		dave:  "+31612345673",
		erin:  "+31612345674",
	}
	var secrets []string // everything no log line or event may hold
	for account, p := range phones {
		secrets = append(secrets, p, strings.TrimPrefix(p, "+31")) // also without the country code
		secrets = append(secrets, account)                         // log_accounts is hashed by default
	}
	secrets = append(secrets, password)
	g := newOpsGateway(t, phones, func(h *Handler) {
		hour := caddy.Duration(time.Hour)
		h.Lockout = &Threshold{Failures: 3, Window: hour, Duration: hour}
		h.IPBlock = &Threshold{Failures: 4, Window: hour, Duration: hour}
	})

	// A reset from start to upstream, with one wrong code on the way.
	flow := g.start(alice, "192.0.2.30")
	code := g.code(flow)
	g.verify(flow, wrongCode(code), "192.0.2.30", http.StatusBadRequest)
	var verified struct {
		Token string `json:"reset_token"`
	}
	if err := json.Unmarshal(g.verify(flow, code, "192.0.2.30", http.StatusOK).Body.Bytes(), &verified); err != nil {
		t.Fatal(err)
	}
	w := g.post("/reset", "192.0.2.30", map[string]string{"reset_token": verified.Token, "password": password})
	if w.Code != http.StatusNoContent {
		t.Fatalf("reset: status %d %s", w.Code, w.Body)
	}
	if u := g.upstream; len(u.bodies) != 1 || !strings.Contains(u.bodies[0], password) ||
		strings.Contains(u.bodies[0], verified.Token) || u.accounts[0] != alice {
		t.Fatalf("upstream got bodies %q for accounts %q", u.bodies, u.accounts)
	}
	secrets = append(secrets, flow, code, wrongCode(code), verified.Token)

	// An unknown account gets a decoy flow.
	secrets = append(secrets, g.start("nobody@example.com", "192.0.2.30"), "nobody@example.com")

	// A lockout, then an IP block across two accounts.
	flow, code = g.lock(bob, "192.0.2.31", 3, http.StatusLocked)
	secrets = append(secrets, flow, code, wrongCode(code))
	const blocked = "198.51.100.9"
	for i, account := range []string{carol, dave} {
		flow := g.start(account, blocked)
		code := g.code(flow)
		want := []int{http.StatusBadRequest, http.StatusBadRequest}
		if i == 1 {
			want[1] = http.StatusForbidden
		}
		for _, status := range want {
			g.verify(flow, wrongCode(code), blocked, status)
		}
		secrets = append(secrets, flow, code, wrongCode(code))
	}

	// An SMS the provider refuses.
	mb := newRefusingMessageBird(t)
	failing := newOpsGateway(t, phones, func(h *Handler) {
		h.SenderRaw = messageBirdSender(&messagebird.MessageBird{AccessKey: "test_key", Originator: "OpsMail", Endpoint: mb.URL})
	})
	flow = failing.start(erin, "192.0.2.32")
	secrets = append(secrets, flow, "test_key")

	// Closing drains the SMS queues, so every delivery outcome is logged.
	g.close()
	failing.close()
	if n := len(mb.codes()); n != 1 {
		t.Fatalf("MessageBird got %d messages, want 1", n)
	}
	secrets = append(secrets, mb.codes()...)

	lines := append(serialize(t, g.logs), serialize(t, failing.logs)...)
	events := append(g.events.all(), failing.events.all()...)
	for _, s := range secrets {
		for _, l := range lines {
			if strings.Contains(l, s) {
				t.Errorf("log line holds the secret %q: %s", s, l)
			}
		}
		for _, e := range events {
			if strings.Contains(e, s) {
				t.Errorf("Caddy event holds the secret %q: %s", s, e)
			}
		}
	}

	all := strings.Join(lines, "\n")
	if !strings.Contains(all, `"phone":"`+masked+`"`) {
		t.Errorf("no log line has the masked phone %s", masked)
	}
	for _, name := range []string{
		"flow_started", "sms_sent", "wrong_code", "code_verified", "reset_forwarded",
		"account_locked", "ip_blocked", "sms_rejected",
	} {
		if !strings.Contains(all, `"event":"`+name+`"`) {
			t.Errorf("no log line for the event %s", name)
		}
		if !strings.Contains(strings.Join(events, "\n"), `"name":"sms_recovery_`+name+`"`) {
			t.Errorf("no Caddy event sms_recovery_%s", name)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, `"event":"sms_rejected"`) && !strings.Contains(l, `"level":"warn"`) {
			t.Errorf("a refused SMS is not a warning: %s", l)
		}
	}
}

// serialize encodes every captured entry as Caddy's JSON log would write
// it, without the time, whose digits could match a code by chance.
func serialize(t *testing.T, logs *zapobs.ObservedLogs) []string {
	t.Helper()
	cfg := zap.NewProductionEncoderConfig()
	cfg.TimeKey = ""
	enc := zapcore.NewJSONEncoder(cfg)
	var out []string
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(buf.String()))
		buf.Free()
	}
	return out
}

// all returns every recorded event as JSON: its name and data.
func (e *opsEvents) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		b, err := json.Marshal(map[string]any{"name": ev.Name(), "data": ev.Data})
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
	}
	return out
}

// refusingMessageBird answers every message as MessageBird does a recipient
// it cannot text, and keeps the codes it was sent.
type refusingMessageBird struct {
	*httptest.Server

	mu   sync.Mutex
	sent []string
}

var mbCode = regexp.MustCompile(`#([0-9]+)$`)

func newRefusingMessageBird(t *testing.T) *refusingMessageBird {
	t.Helper()
	mb := &refusingMessageBird{}
	mb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m struct{ Body string }
		if json.Unmarshal(raw, &m) == nil {
			if sub := mbCode.FindStringSubmatch(m.Body); sub != nil {
				mb.mu.Lock()
				mb.sent = append(mb.sent, sub[1])
				mb.mu.Unlock()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"errors":[{"code":9,"description":"no (correct) recipients found","parameter":"recipient"}]}`)
	}))
	t.Cleanup(mb.Close)
	return mb
}

func (mb *refusingMessageBird) codes() []string {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]string(nil), mb.sent...)
}
