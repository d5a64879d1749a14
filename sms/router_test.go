package sms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// tries collects the Try values reported to a Queue.
type tries struct {
	mu  sync.Mutex
	got []Try
}

func (t *tries) observe(x Try) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.got = append(t.got, x)
}

func (t *tries) all() []Try {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Try(nil), t.got...)
}

// summary is "provider/position:result:status" for each try, in order.
func (t *tries) summary() string {
	s := ""
	for i, x := range t.all() {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s/%d:%s:%d", x.Provider, x.Position, x.Result, x.Status)
	}
	return s
}

func TestQueueReportsTries(t *testing.T) {
	t.Parallel()
	answers := []error{
		&Error{Provider: "p", Status: 503},
		errDown,
		nil,
		&Error{Provider: "p", Status: 422, Code: 9, Permanent: true},
	}
	var n atomic.Int32
	d := delivererFunc(func(context.Context, recovery.Message) error { return answers[n.Add(1)-1] })
	var seen tries
	q, out, _, _ := testQueue(t, d, QueueConfig{Provider: "mb", ObserveTry: seen.observe})
	for _, want := range []Result{ResultSent, ResultRejected} {
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != want {
			t.Fatalf("outcome = %s (%v), want %s", o.Result, o.Err, want)
		}
	}
	if got, want := seen.summary(), "mb/1:failed:503 mb/1:failed:0 mb/1:sent:0 mb/1:rejected:422"; got != want {
		t.Errorf("tries = %s, want %s", got, want)
	}
	for _, x := range seen.all() {
		if x.Reference != testMessage.Reference {
			t.Errorf("try of reference %q, want %q", x.Reference, testMessage.Reference)
		}
		if (x.Result == ResultSent) != (x.Err == nil) {
			t.Errorf("try %s with error %v", x.Result, x.Err)
		}
	}

	t.Run("a try the breaker refused", func(t *testing.T) {
		t.Parallel()
		d := delivererFunc(func(context.Context, recovery.Message) error { return errDown })
		var seen tries
		q, out, _, _ := testQueue(t, d, QueueConfig{Provider: "mb", ObserveTry: seen.observe, BreakerThreshold: 1, MaxTries: 2})
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultCircuitOpen {
			t.Fatalf("outcome = %s, want circuit_open", o.Result)
		}
		if got, want := seen.summary(), "mb/1:failed:0 mb/1:circuit_open:0"; got != want {
			t.Errorf("tries = %s, want %s", got, want)
		}
	})
}

// router is a Deliverer that routes to providers of its own: it answers
// each try with the next of its errors, reports a try of its own, and
// says whether its breakers are all open.
type router struct {
	mu      sync.Mutex
	errs    []error
	calls   int
	open    bool
	seenCtx []context.Context
}

func (r *router) Deliver(ctx context.Context, m recovery.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.seenCtx = append(r.seenCtx, ctx)
	var err error
	if len(r.errs) > 0 {
		err, r.errs = r.errs[0], r.errs[1:]
	}
	result := ResultSent
	if err != nil {
		result = ResultFailed
	}
	ReportTry(ctx, Try{Provider: "second", Position: 2, Result: result, Reference: m.Reference, Err: err})
	return err
}

func (r *router) CircuitOpen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

func TestQueueInFrontOfARouter(t *testing.T) {
	t.Parallel()
	t.Run("keeps no breaker and sets no timeout", func(t *testing.T) {
		t.Parallel()
		r := &router{errs: []error{errDown, errDown, errDown, &Error{Provider: "x", Status: 500}}}
		var seen tries
		q, out, _, _ := testQueue(t, r, QueueConfig{Provider: "failover", ObserveTry: seen.observe, BreakerThreshold: 1, MaxTries: 5})
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultSent || o.Attempts != 5 {
			t.Fatalf("outcome = %s after %d attempts, want sent after 5: the router's own breakers decide", o.Result, o.Attempts)
		}
		if q.CircuitOpen() {
			t.Error("CircuitOpen after four failures of a router whose breakers are closed")
		}
		r.mu.Lock()
		for i, ctx := range r.seenCtx {
			if _, ok := ctx.Deadline(); ok {
				t.Errorf("try %d has a deadline: the router bounds each provider's try itself", i+1)
			}
		}
		r.mu.Unlock()
		if got, want := seen.summary(), "second/2:failed:0 second/2:failed:0 second/2:failed:0 second/2:failed:0 second/2:sent:0"; got != want {
			t.Errorf("tries = %s, want %s: the router's own, and none from the queue", got, want)
		}
	})
	t.Run("every road closed", func(t *testing.T) {
		t.Parallel()
		closed := fmt.Errorf("every provider resting: %w", ErrCircuitOpen)
		r := &router{errs: []error{closed, closed}, open: true}
		q, out, _, _ := testQueue(t, r, QueueConfig{MaxTries: 2})
		if !q.CircuitOpen() {
			t.Error("CircuitOpen = false, want the router's answer")
		}
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultCircuitOpen || !errors.Is(o.Err, ErrCircuitOpen) {
			t.Fatalf("outcome = %s (%v), want circuit_open", o.Result, o.Err)
		}
	})
}

func TestTryContext(t *testing.T) {
	t.Parallel()
	ReportTry(context.Background(), Try{Provider: "p"}) // no observer: nothing happens
	var seen tries
	ctx := WithTryObserver(context.Background(), seen.observe)
	ctx = WithIdempotencyKey(ctx, "k")
	ReportTry(ctx, Try{Provider: "p", Position: 1, Result: ResultSent})
	if got := seen.summary(); got != "p/1:sent:0" {
		t.Errorf("tries = %s, want p/1:sent:0", got)
	}
}
