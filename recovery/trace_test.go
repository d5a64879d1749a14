package recovery_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// refShape is what a support reference looks like: two groups of five
// characters of Crockford's base32, none of I, L, O and U.
var refShape = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$`)

func TestTraceRef(t *testing.T) {
	t.Parallel()
	k1, _ := recovery.NewKeyring([]byte(strings.Repeat("a", 32)))
	k2, _ := recovery.NewKeyring([]byte(strings.Repeat("b", 32)))
	seen := map[string]bool{}
	for _, id := range []string{"flow-one-aaaaaaaaaaaaa", "flow-two-aaaaaaaaaaaaa", "flow-one-aaaaaaaaaaaab"} {
		ref := k1.TraceRef(id)
		if !refShape.MatchString(ref) {
			t.Errorf("TraceRef(%q) = %q, not a reference", id, ref)
		}
		if ref != k1.TraceRef(id) {
			t.Errorf("TraceRef(%q) is not stable", id)
		}
		if seen[ref] {
			t.Errorf("TraceRef(%q) = %q, given to another flow too", id, ref)
		}
		seen[ref] = true
		// Without the secret, a flow ID does not give its reference.
		if k2.TraceRef(id) == ref {
			t.Errorf("TraceRef(%q) is the same under another secret", id)
		}
		// A realm does not change it: instances find each other's trails.
		if k1.InRealm("other").TraceRef(id) != ref {
			t.Errorf("TraceRef(%q) depends on the realm", id)
		}
	}
	r1, err := recovery.NewTraceRef(newSeeded(7))
	if err != nil || !refShape.MatchString(r1) {
		t.Fatalf("NewTraceRef = %q, %v", r1, err)
	}
	if r2, _ := recovery.NewTraceRef(newSeeded(8)); r2 == r1 {
		t.Errorf("NewTraceRef gave %q twice", r1)
	}
	if _, err := recovery.NewTraceRef(strings.NewReader("short")); err == nil {
		t.Error("NewTraceRef without enough randomness succeeded")
	}
}

func TestParseTraceRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"K7QMX-2XD9T", "K7QMX-2XD9T"},
		{"k7qmx2xd9t", "K7QMX-2XD9T"},
		{" k7qm x-2xd 9t ", "K7QMX-2XD9T"},
		{"OIL00-00000", "01100-00000"}, // read aloud: O is 0, I and L are 1
	} {
		got, err := recovery.ParseTraceRef(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTraceRef(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "K7QMX-2XD9", "K7QMX-2XD9TT", "K7QMU-2XD9T", "K7QMX_2XD9T", "K7QMX-2XD9Ť", "../../etc", "*"} {
		if got, err := recovery.ParseTraceRef(bad); !errors.Is(err, recovery.ErrBadTraceRef) {
			t.Errorf("ParseTraceRef(%q) = %q, %v; want ErrBadTraceRef", bad, got, err)
		}
	}
}

// traceRecorder keeps every event.
type traceRecorder struct {
	mu sync.Mutex
	ev []recovery.Event
}

func (r *traceRecorder) Observe(_ context.Context, e recovery.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev = append(r.ev, e)
}

func (r *traceRecorder) all() []recovery.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recovery.Event(nil), r.ev...)
}

// TestEventsCarryTheFlowsReference follows one flow to a lock: every
// event, the refusals and the lock notice carry the flow's reference, and
// a refused start carries one of its own, which its error gives.
func TestEventsCarryTheFlowsReference(t *testing.T) {
	t.Parallel()
	rec := &traceRecorder{}
	f := newFixture(t, func(c *recovery.Config, l *limiter.Config) {
		c.NotifyOnLock = true
		l.Lockout = limiter.Threshold{Failures: 2, Window: time.Hour, Duration: 30 * time.Minute}
	})
	f.deps.Observer = rec
	svc, err := recovery.New(f.cfg, f.deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := svc.Start(ctx, recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: publicURL})
	if err != nil {
		t.Fatal(err)
	}
	want := f.keys.TraceRef(s.FlowID)
	code := f.sent.lastCode(t)
	_, err = svc.Verify(ctx, s.FlowID, wrong(code), ip)
	if !errors.Is(err, recovery.ErrInvalidCode) || recovery.TraceOf(err) != want {
		t.Fatalf("wrong code = %v with reference %q, want ErrInvalidCode with %q", err, recovery.TraceOf(err), want)
	}
	var ce *recovery.CodeError
	if !errors.As(err, &ce) || ce.AttemptsLeft != 4 {
		t.Fatalf("wrong code = %v, want a CodeError with 4 attempts left", err)
	}
	_, err = svc.Verify(ctx, s.FlowID, wrong(code), ip)
	if !errors.Is(err, recovery.ErrLocked) || recovery.TraceOf(err) != want {
		t.Fatalf("locking code = %v with reference %q, want ErrLocked with %q", err, recovery.TraceOf(err), want)
	}
	names := map[string]bool{}
	for _, e := range rec.all() {
		names[e.Name] = true
		if e.Trace != want {
			t.Errorf("event %s filed under %q, want the flow's %q", e.Name, e.Trace, want)
		}
	}
	for _, n := range []string{recovery.EventFlowStarted, recovery.EventWrongCode, recovery.EventAccountLocked, recovery.EventLockNotice} {
		if !names[n] {
			t.Errorf("no %s event; got %v", n, names)
		}
	}
	msgs := f.sent.all()
	notice := msgs[len(msgs)-1]
	if notice.Kind != "lock_notice" || !strings.HasSuffix(notice.Body, "\nReference for support: "+want) || notice.Trace != want {
		t.Errorf("lock notice %q (trace %q) does not end with the flow's reference %q", notice.Body, notice.Trace, want)
	}
	if msgs[0].Trace != want {
		t.Errorf("code message traced as %q, want %q", msgs[0].Trace, want)
	}
	if recovery.Segments(notice.Body) > 2 || !recovery.IsGSM7(notice.Body) {
		t.Errorf("lock notice with its reference is %d segments or not GSM-7: %q", recovery.Segments(notice.Body), notice.Body)
	}

	// A start refused by the lock has no flow: its events and its error
	// carry a reference of their own, never the locked flow's.
	before := len(rec.all())
	_, err = svc.Start(ctx, recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: publicURL})
	ref := recovery.TraceOf(err)
	if !errors.Is(err, recovery.ErrLocked) || !refShape.MatchString(ref) || ref == want {
		t.Fatalf("refused start = %v with reference %q, want ErrLocked with a reference of its own", err, ref)
	}
	after := rec.all()[before:]
	if len(after) == 0 {
		t.Fatal("refused start emitted no event")
	}
	for _, e := range after {
		if e.Trace != ref || e.FlowRef != "" {
			t.Errorf("refused start's %s filed under %q (flow %q), want %q and no flow", e.Name, e.Trace, e.FlowRef, ref)
		}
	}

	// A malformed flow ID has no flow and no reference: the caller gives one.
	if _, err := svc.Verify(ctx, "short", code, ip); recovery.TraceOf(err) != "" {
		t.Errorf("malformed flow got reference %q", recovery.TraceOf(err))
	}
}

func TestNoticeReferenceOnlyWhenItFits(t *testing.T) {
	t.Parallel()
	msgs, err := recovery.NewMessages(recovery.MessageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "K7QMX-2XD9T"
	for _, lang := range recovery.Languages() {
		for _, render := range []func(string, recovery.MessageData) (string, error){msgs.LockNotice, msgs.ImposedNotice} {
			// The longest site name and support text the messages are
			// written for: the reference still fits.
			body, err := render(lang, recovery.MessageData{SiteName: strings.Repeat("S", 20),
				Support: "Call +1 555 0100 or write to help@example-company.com"})
			if err != nil {
				t.Fatal(err)
			}
			got := msgs.WithReference(lang, body, ref)
			if got == body || !strings.HasSuffix(got, " "+ref) || recovery.Segments(got) > 2 || !recovery.IsGSM7(got) {
				t.Errorf("%s: %q with its reference is %q (%d segments)", lang, body, got, recovery.Segments(got))
			}
			// A support text that leaves no room: the notice goes without it.
			n, _ := recovery.Septets(body)
			long := body + "\n" + strings.Repeat("x", 300-n-1)
			if recovery.Segments(long) != 2 {
				t.Fatalf("%s: the long notice is %d segments", lang, recovery.Segments(long))
			}
			if got := msgs.WithReference(lang, long, ref); got != long {
				t.Errorf("%s: reference added past two segments: %d segments", lang, recovery.Segments(got))
			}
			// A notice in UCS-2 already is not made longer either.
			if got := msgs.WithReference(lang, body+"✓", ref); got != body+"✓" {
				t.Errorf("%s: reference added to a UCS-2 notice", lang)
			}
		}
		if got := msgs.WithReference(lang, "body", ""); got != "body" {
			t.Errorf("%s: empty reference changed the notice to %q", lang, got)
		}
	}
}
