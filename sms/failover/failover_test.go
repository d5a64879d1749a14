package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/outbox"
)

var testMessage = recovery.Message{
	Kind:      "code",
	To:        "+31612345678",
	Body:      "Example Mail password reset code: 493817",
	Reference: "flow-7f3a",
}

// bird is the JSON of a messagebird sender whose platform key sends to p.
func bird(p *provider) json.RawMessage {
	return caddyconfig.JSONModuleObject(&messagebird.MessageBird{
		AccessKey: "bk_eu1_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c", Originator: "ExampleMail", Endpoint: p.URL,
	}, "provider", "messagebird", nil)
}

// twoBirds loads a failover from primary to secondary as the gateway
// does, from its JSON.
func twoBirds(t *testing.T, primary, secondary *provider) *Failover {
	t.Helper()
	f, err := guesttest.Load(t, &Failover{SendersRaw: []json.RawMessage{bird(primary), bird(secondary)}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// provisioned provisions and validates f as Caddy would, keeping what a
// test set in its unexported fields (a breaker threshold, a clock).
func provisioned(t *testing.T, f *Failover) (*Failover, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := f.Provision(ctx); err != nil {
		return nil, err
	}
	return f, f.Validate()
}

// tries records the Try values of deliveries.
type tries struct {
	mu  sync.Mutex
	got []sms.Try
}

func (r *tries) observe(t sms.Try) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, t)
}

// String is "position:result:status" for each try, in order.
func (r *tries) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, t := range r.got {
		s = append(s, fmt.Sprintf("%d:%s:%d", t.Position, t.Result, t.Status))
	}
	return strings.Join(s, " ")
}

// deliver hands m to f once, as a queue's try under key would, with its
// tries going to seen.
func deliver(f *Failover, key string, seen *tries) error {
	ctx := sms.WithIdempotencyKey(context.Background(), key)
	if seen != nil {
		ctx = sms.WithTryObserver(ctx, seen.observe)
	}
	return f.Deliver(ctx, testMessage)
}

func TestFailoverPrimaryDown(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
	secondary := newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	var seen tries
	if err := deliver(f, "key-1", &seen); err != nil {
		t.Fatalf("Deliver = %v, want the secondary to send it", err)
	}
	if p, s := primary.requests(), secondary.requests(); !slices.Equal(p, []string{"key-1"}) || !slices.Equal(s, []string{"key-1"}) {
		t.Errorf("idempotency keys seen: primary %q, secondary %q; want key-1 at each", p, s)
	}
	if got := secondary.sentBy()["key-1"]; got != 1 {
		t.Errorf("the secondary sent %d SMS, want 1", got)
	}
	if got, want := seen.String(), "1:failed:503 2:sent:0"; got != want {
		t.Errorf("tries = %s, want %s", got, want)
	}
	for _, tr := range seen.got {
		if tr.Provider != "messagebird" || tr.Reference != testMessage.Reference {
			t.Errorf("try %+v, want provider messagebird and the message's reference", tr)
		}
	}
}

func TestFailoverSkipsAResting(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, always(refuse(http.StatusInternalServerError)))
	secondary := newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	for i := range sms.DefaultBreakerThreshold {
		if err := deliver(f, fmt.Sprint("key-", i), nil); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if f.CircuitOpen() {
		t.Error("CircuitOpen with the secondary's breaker closed")
	}
	var seen tries
	if err := deliver(f, "key-rest", &seen); err != nil {
		t.Fatal(err)
	}
	if n := len(primary.requests()); n != sms.DefaultBreakerThreshold {
		t.Errorf("the primary got %d requests, want %d: once its breaker opened it is not called", n, sms.DefaultBreakerThreshold)
	}
	if got, want := seen.String(), "1:circuit_open:0 2:sent:0"; got != want {
		t.Errorf("tries = %s, want %s", got, want)
	}
	if got := secondary.sentBy()["key-rest"]; got != 1 {
		t.Errorf("the secondary sent %d SMS of the last message, want 1", got)
	}
}

func TestFailoverDecides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		primary   reply
		down      bool // the primary's address refuses connections
		wantTries string
		// wantErr is what Deliver returns: "" for nil, "permanent" or
		// "retryable".
		wantErr string
	}{
		{name: "400 refuses the message: no failover", primary: refuse(400), wantTries: "1:rejected:400", wantErr: "permanent"},
		{name: "422 refuses the message: no failover", primary: refuse(422), wantTries: "1:rejected:422", wantErr: "permanent"},
		{name: "401 refuses the key: failover", primary: refuse(401), wantTries: "1:failed:401 2:sent:0"},
		{name: "402 no balance: failover", primary: refuse(402), wantTries: "1:failed:402 2:sent:0"},
		{name: "403 not allowed: failover", primary: refuse(403), wantTries: "1:failed:403 2:sent:0"},
		{name: "404 no such endpoint: failover", primary: refuse(404), wantTries: "1:failed:404 2:sent:0"},
		{name: "429: failover", primary: refuse(429), wantTries: "1:failed:429 2:sent:0"},
		{name: "500: failover", primary: refuse(500), wantTries: "1:failed:500 2:sent:0"},
		{name: "502: failover", primary: refuse(502), wantTries: "1:failed:502 2:sent:0"},
		{name: "connection refused: failover", down: true, wantTries: "1:failed:0 2:sent:0"},
		{name: "504 may have sent it: no failover", primary: refuse(504), wantTries: "1:failed:504", wantErr: "retryable"},
		{name: "answer lost after sending: no failover", primary: loseAnswer, wantTries: "1:failed:0", wantErr: "retryable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			primary := newProvider(t, always(tt.primary))
			if tt.down {
				primary.Close()
			}
			secondary := newProvider(t, always(accept))
			f := twoBirds(t, primary, secondary)
			var seen tries
			err := deliver(f, "key-1", &seen)
			if got := seen.String(); got != tt.wantTries {
				t.Errorf("tries = %s, want %s", got, tt.wantTries)
			}
			var perr *sms.Error
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("Deliver = %v, want sent", err)
				}
			case "permanent":
				if !errors.As(err, &perr) || !perr.Permanent {
					t.Fatalf("Deliver = %v, want a permanent refusal", err)
				}
			case "retryable":
				if err == nil || errors.As(err, &perr) && perr.Permanent {
					t.Fatalf("Deliver = %v, want an error worth retrying", err)
				}
			}
			if tt.wantErr != "" && len(secondary.requests()) != 0 {
				t.Errorf("the secondary got %q: it must not send this message", secondary.requests())
			}
		})
	}
}

// TestFailoverAnswerLost: a provider that may have taken a message alone
// tries it again, under the same key, however long it fails meanwhile.
func TestFailoverAnswerLost(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	next := loseAnswer
	primary := newProvider(t, func(int) reply {
		mu.Lock()
		defer mu.Unlock()
		return next
	})
	secondary := newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	if err := deliver(f, "key-lost", nil); err == nil {
		t.Fatal("Deliver = nil after the answer was lost")
	}
	mu.Lock()
	next = refuse(http.StatusServiceUnavailable)
	mu.Unlock()
	// The primary is down now, but it may have sent the message: its
	// breaker opens, and still the secondary is not asked.
	for range sms.DefaultBreakerThreshold + 2 {
		err := deliver(f, "key-lost", nil)
		var perr *sms.Error
		if err == nil || errors.As(err, &perr) && perr.Permanent {
			t.Fatalf("Deliver = %v, want an error worth retrying", err)
		}
	}
	if got := secondary.requests(); len(got) != 0 {
		t.Fatalf("the secondary got %q for a message the primary may have sent", got)
	}
	// Another message goes to the secondary, the primary resting.
	if err := deliver(f, "key-other", nil); err != nil {
		t.Fatal(err)
	}
	if got := secondary.sentBy(); got["key-other"] != 1 || len(got) != 1 {
		t.Errorf("the secondary sent %v, want key-other once", got)
	}
	if got := primary.sentBy(); got["key-lost"] != 1 || len(got) != 1 {
		t.Errorf("the primary sent %v, want key-lost once", got)
	}
}

// TestFailoverAnswerLostThenAnswered: the try after a lost answer, at the
// same provider under the same key, ends it.
func TestFailoverAnswerLostThenAnswered(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, func(n int) reply {
		if n == 1 {
			return loseAnswer
		}
		return accept
	})
	secondary := newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	if err := deliver(f, "key-1", nil); err == nil {
		t.Fatal("Deliver = nil after the answer was lost")
	}
	var seen tries
	if err := deliver(f, "key-1", &seen); err != nil {
		t.Fatalf("second try: %v", err)
	}
	if got, want := seen.String(), "1:sent:0"; got != want {
		t.Errorf("tries = %s, want %s", got, want)
	}
	if got := primary.sentBy()["key-1"]; got != 1 || len(secondary.requests()) != 0 {
		t.Errorf("the primary sent %d SMS and the secondary got %q; want one SMS, from the primary", got, secondary.requests())
	}
	if n := f.pins.len(); n != 0 {
		t.Errorf("%d messages still pinned after they were sent", n)
	}
}

func TestFailoverBothDown(t *testing.T) {
	t.Parallel()
	t.Run("failing: worth retrying", func(t *testing.T) {
		t.Parallel()
		primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
		secondary := newProvider(t, always(refuse(http.StatusTooManyRequests)))
		f := twoBirds(t, primary, secondary)
		err := deliver(f, "key-1", nil)
		var perr *sms.Error
		if !errors.As(err, &perr) || perr.Permanent || perr.Provider != "failover" {
			t.Fatalf("Deliver = %v, want a failover error worth retrying", err)
		}
		for _, want := range []string{"sender 1: messagebird: status 503", "sender 2: messagebird: status 429"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if perr.RetryAfter != 0 {
			t.Errorf("RetryAfter = %s, want none: the primary named no wait", perr.RetryAfter)
		}
	})
	t.Run("both refuse the gateway: permanent", func(t *testing.T) {
		t.Parallel()
		primary := newProvider(t, always(refuse(http.StatusUnauthorized)))
		secondary := newProvider(t, always(refuse(http.StatusForbidden)))
		f := twoBirds(t, primary, secondary)
		err := deliver(f, "key-1", nil)
		var perr *sms.Error
		if !errors.As(err, &perr) || !perr.Permanent {
			t.Fatalf("Deliver = %v, want permanent: no provider will take it", err)
		}
	})
	t.Run("every breaker open", func(t *testing.T) {
		t.Parallel()
		primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
		secondary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
		f := twoBirds(t, primary, secondary)
		for i := range sms.DefaultBreakerThreshold {
			if err := deliver(f, fmt.Sprint("key-", i), nil); err == nil {
				t.Fatal("Deliver = nil with both down")
			}
		}
		if !f.CircuitOpen() {
			t.Error("CircuitOpen = false with both breakers open")
		}
		if err := deliver(f, "key-last", nil); !errors.Is(err, sms.ErrCircuitOpen) {
			t.Errorf("Deliver = %v, want sms.ErrCircuitOpen", err)
		}
	})
	t.Run("the queue keeps the message until one is back", func(t *testing.T) {
		t.Parallel()
		back := make(chan struct{})
		down := func(n int) reply {
			select {
			case <-back:
				return accept
			default:
				return refuse(http.StatusBadGateway)
			}
		}
		primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
		secondary := newProvider(t, down)
		f := twoBirds(t, primary, secondary)
		out := make(chan sms.Outcome, 1)
		var slept int
		q := sms.NewQueue(f, sms.QueueConfig{Workers: 1, MaxTries: 5, Observe: func(o sms.Outcome) { out <- o },
			Sleep: func(ctx context.Context, _ time.Duration) error {
				if slept++; slept == 2 {
					close(back) // the secondary comes back after two rounds
				}
				return ctx.Err()
			}})
		defer q.Close(context.Background())
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		o := <-out
		if o.Result != sms.ResultSent || o.Attempts != 3 {
			t.Fatalf("outcome = %s after %d attempts (%v), want sent after 3", o.Result, o.Attempts, o.Err)
		}
		p, s := primary.requests(), secondary.requests()
		if len(p) != 3 || len(s) != 3 || p[0] != s[0] || p[0] != p[2] || s[0] != s[2] {
			t.Errorf("keys: primary %q, secondary %q; want three tries at each under one key", p, s)
		}
		if got := secondary.sentBy(); len(got) != 1 || got[s[0]] != 1 {
			t.Errorf("the secondary sent %v, want the message once", got)
		}
	})
}

// TestFailoverExactlyOnce: many messages through a queue while both
// providers flap — refusing, failing, losing answers after sending —
// and each goes out exactly once across the two.
func TestFailoverExactlyOnce(t *testing.T) {
	t.Parallel()
	flap := func(every map[int]reply) func(int) reply {
		return func(n int) reply {
			for m, r := range every {
				if n%m == 0 {
					return r
				}
			}
			return accept
		}
	}
	primary := newProvider(t, flap(map[int]reply{7: refuse(503), 5: loseAnswer, 13: refuse(504)}))
	secondary := newProvider(t, flap(map[int]reply{3: refuse(500), 4: loseAnswer}))
	f, err := provisioned(t, &Failover{SendersRaw: []json.RawMessage{bird(primary), bird(secondary)}, threshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	outcomes := make(chan sms.Outcome, n)
	q := sms.NewQueue(f, sms.QueueConfig{Workers: 32, MaxTries: 50, Observe: func(o sms.Outcome) { outcomes <- o },
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	defer q.Close(context.Background())
	for i := range n {
		m := testMessage
		m.Reference = fmt.Sprint("flow-", i)
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if o := <-outcomes; o.Result != sms.ResultSent {
			t.Fatalf("message %s: %s after %d attempts (%v)", o.Reference, o.Result, o.Attempts, o.Err)
		}
	}
	sent := map[string]int{}
	for _, p := range []*provider{primary, secondary} {
		for k, c := range p.sentBy() {
			sent[k] += c
		}
	}
	if len(sent) != n {
		t.Errorf("%d messages sent, want %d", len(sent), n)
	}
	for k, c := range sent {
		if c != 1 {
			t.Errorf("message %s sent %d times", k, c)
		}
	}
	if ps, ss := len(primary.sentBy()), len(secondary.sentBy()); ps == 0 || ss == 0 {
		t.Errorf("primary sent %d, secondary %d: the test should see both at work", ps, ss)
	}
	if n := f.pins.len(); n != 0 {
		t.Errorf("%d messages still pinned after every one was sent", n)
	}
}

func TestFailoverPinsExpire(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, always(loseAnswer))
	secondary := newProvider(t, always(accept))
	clk := clock.NewManual(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	f, err := provisioned(t, &Failover{SendersRaw: []json.RawMessage{bird(primary), bird(secondary)}, clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage
	m.ExpiresAt = clk.Now().Add(5 * time.Minute)
	for i := range 3 {
		ctx := sms.WithIdempotencyKey(context.Background(), fmt.Sprint("key-", i))
		if err := f.Deliver(ctx, m); err == nil {
			t.Fatal("Deliver = nil after the answer was lost")
		}
	}
	if got := f.pins.len(); got != 3 {
		t.Fatalf("%d pinned, want 3", got)
	}
	clk.Advance(5 * time.Minute)
	f.pins.sweep(clk.Now())
	if got := f.pins.len(); got != 0 {
		t.Errorf("%d pinned after every message expired, want 0", got)
	}
}

func TestFailoverNeedsAKey(t *testing.T) {
	t.Parallel()
	primary, secondary := newProvider(t, always(accept)), newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	err := f.Deliver(context.Background(), testMessage)
	var perr *sms.Error
	if !errors.As(err, &perr) || !perr.Permanent || !strings.Contains(err.Error(), "idempotency key") {
		t.Errorf("Deliver without a key = %v, want a permanent refusal naming the idempotency key", err)
	}
	if len(primary.requests())+len(secondary.requests()) != 0 {
		t.Error("a message without a key went out")
	}
}

func TestFailoverLoad(t *testing.T) {
	t.Parallel()
	p := newProvider(t, always(accept))
	box := caddyconfig.JSONModuleObject(&outbox.Outbox{Path: t.TempDir() + "/outbox.jsonl"}, "provider", "outbox", nil)
	nested := caddyconfig.JSONModuleObject(&Failover{SendersRaw: []json.RawMessage{bird(p), box}}, "provider", "failover", nil)
	tests := []struct {
		name    string
		senders []json.RawMessage
		wantErr string
	}{
		{name: "two senders", senders: []json.RawMessage{bird(p), box}},
		{name: "none", wantErr: "sms failover: at least two senders"},
		{name: "one", senders: []json.RawMessage{bird(p)}, wantErr: "sms failover: at least two senders"},
		{name: "a failover inside", senders: []json.RawMessage{bird(p), nested}, wantErr: "sms failover: sender 2 is a failover"},
		{name: "an unknown sender", senders: []json.RawMessage{bird(p), json.RawMessage(`{"provider":"pigeon"}`)}, wantErr: "pigeon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := guesttest.Load(t, &Failover{SendersRaw: tt.senders})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("load = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestFailoverSettingsInJSON: what the gateway keys its pooled queue by, the
// module's JSON after Provision, still names every sender, so that a
// reload that changes one gets a queue of its own.
func TestFailoverSettingsInJSON(t *testing.T) {
	t.Parallel()
	a, b := newProvider(t, always(accept)), newProvider(t, always(accept))
	f1, f2 := twoBirds(t, a, b), twoBirds(t, b, a)
	j1, _ := json.Marshal(f1)
	j2, _ := json.Marshal(f2)
	if string(j1) == string(j2) || !strings.Contains(string(j1), a.URL) || !strings.Contains(string(j1), b.URL) {
		t.Errorf("JSON after Provision: %s and %s; want each sender's settings, in order", j1, j2)
	}
}

// TestFailoverOutboxFallback: a sender that delivers in this process, the
// outbox, may be a fallback; its try has no timeout to bound.
func TestFailoverOutboxFallback(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
	path := t.TempDir() + "/outbox.jsonl"
	box := caddyconfig.JSONModuleObject(&outbox.Outbox{Path: path}, "provider", "outbox", nil)
	f, err := guesttest.Load(t, &Failover{SendersRaw: []json.RawMessage{bird(primary), box}})
	if err != nil {
		t.Fatal(err)
	}
	var seen tries
	if err := deliver(f, "key-1", &seen); err != nil {
		t.Fatal(err)
	}
	if got, want := seen.String(), "1:failed:503 2:sent:0"; got != want {
		t.Errorf("tries = %s, want %s", got, want)
	}
	if seen.got[1].Provider != "outbox" {
		t.Errorf("the second try's provider = %q, want outbox", seen.got[1].Provider)
	}
}

// TestFailoverDeliversAfterCleanup: the gateway's pooled queue may still
// deliver through a failover after Caddy cleaned it up with its config.
func TestFailoverDeliversAfterCleanup(t *testing.T) {
	t.Parallel()
	primary := newProvider(t, always(refuse(http.StatusServiceUnavailable)))
	secondary := newProvider(t, always(accept))
	f := twoBirds(t, primary, secondary)
	if err := f.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := deliver(f, "key-1", nil); err != nil {
		t.Fatalf("Deliver after Cleanup = %v", err)
	}
	if err := f.Cleanup(); err != nil {
		t.Fatalf("a second Cleanup: %v", err)
	}
}
