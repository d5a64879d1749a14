package sms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// The breaker reads time.Now, so its tests run in a synctest bubble, where
// the clock moves only when every goroutine in it waits: a 30s cool-down
// passes at once.

func TestBreaker(t *testing.T) {
	t.Parallel()
	const cooldown = 30 * time.Second
	// Each step happens at start+at (non-decreasing). "allow" checks the
	// answer and, when allowed, holds the request; "ok", "reject", "fail"
	// and "release" end the oldest request held with a success, a permanent
	// refusal, a failure, or a shutdown.
	type step struct {
		op   string
		at   time.Duration
		want bool
	}
	fails := func(n int, at time.Duration) []step {
		var s []step
		for range n {
			s = append(s, step{op: "allow", at: at, want: true}, step{op: "fail", at: at})
		}
		return s
	}
	seq := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	const tick = time.Nanosecond
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name:  "stays closed below the threshold",
			steps: seq(fails(2, 0), []step{{op: "allow", want: true}}),
		},
		{
			name: "a success resets the count of consecutive failures",
			steps: seq(fails(2, 0), []step{{op: "allow", want: true}, {op: "ok"}}, fails(2, 0),
				[]step{{op: "allow", want: true}}),
		},
		{
			name: "a permanent refusal counts as a success: the provider answered",
			steps: seq(fails(2, 0), []step{{op: "allow", want: true}, {op: "reject"}}, fails(2, 0),
				[]step{{op: "allow", want: true}}),
		},
		{
			name: "opens after threshold consecutive failures",
			steps: seq(fails(3, 0), []step{
				{op: "allow", want: false},
				{op: "allow", at: cooldown - tick, want: false},
			}),
		},
		{
			// The hand-written breaker let the probe through at the instant
			// the cool-down ended; gobreaker does one tick after.
			name: "the probe goes once the cool-down has passed",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown, want: false},
				{op: "allow", at: cooldown + tick, want: true},
			}),
		},
		{
			name: "lets exactly one probe through after the cool-down",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown + tick, want: true},
				{op: "allow", at: cooldown + tick, want: false},
				{op: "allow", at: 2 * cooldown, want: false},
			}),
		},
		{
			name: "a successful probe closes it",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown + tick, want: true},
				{op: "ok", at: cooldown + tick},
				{op: "allow", at: cooldown + tick, want: true},
				{op: "allow", at: cooldown + tick, want: true},
				{op: "ok", at: cooldown + tick}, {op: "ok", at: cooldown + tick},
			}, fails(2, cooldown+tick), []step{ // counted afresh
				{op: "allow", at: cooldown + tick, want: true},
			}),
		},
		{
			name: "a probe refused for good closes it",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown + tick, want: true},
				{op: "reject", at: cooldown + tick},
				{op: "allow", at: cooldown + tick, want: true},
			}),
		},
		{
			name: "a failed probe opens it for another cool-down",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown + tick, want: true},
				{op: "fail", at: cooldown + time.Second},
				{op: "allow", at: 2*cooldown + time.Second, want: false},
				{op: "allow", at: 2*cooldown + time.Second + tick, want: true},
			}),
		},
		{
			name: "a released probe lets another through",
			steps: seq(fails(3, 0), []step{
				{op: "allow", at: cooldown + tick, want: true},
				{op: "release", at: cooldown + tick},
				{op: "allow", at: cooldown + tick, want: true},
				{op: "allow", at: cooldown + tick, want: false},
			}),
		},
		{
			name: "a release neither resets nor adds to the failures",
			steps: seq(fails(2, 0), []step{
				{op: "allow", want: true}, {op: "release"},
				{op: "allow", want: true}, // not a failure: still closed
			}, fails(1, 0), []step{
				{op: "allow", want: false}, // not a success: the third failure opened it
			}),
		},
		{
			name: "late failures do not extend the cool-down",
			steps: []step{
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "fail", at: 10 * time.Second}, // allowed before it opened
				{op: "allow", at: cooldown + tick, want: true},
			},
		},
		{
			// The hand-written breaker closed on any success; gobreaker
			// ignores outcomes of requests allowed before it opened.
			name: "a late success does not close it",
			steps: []step{
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "ok", at: 10 * time.Second},
				{op: "allow", at: 10 * time.Second, want: false},
			},
		},
		{
			name: "a late outcome does not decide the probe",
			steps: []step{
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "allow", want: true}, {op: "allow", want: true},
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", at: cooldown + tick, want: true}, // the probe
				{op: "release", at: cooldown + tick},           // the late one
				{op: "allow", at: cooldown + tick, want: false},
				{op: "ok", at: cooldown + tick}, // the probe
				{op: "allow", at: cooldown + tick, want: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				b := NewBreaker(3, cooldown)
				var held []func(error)
				for i, s := range tt.steps {
					if d := time.Until(start.Add(s.at)); d > 0 {
						time.Sleep(d)
					} else if d < 0 {
						t.Fatalf("step %d: at +%s goes back in time", i, s.at)
					}
					var result error
					switch s.op {
					case "allow":
						done, err := b.Allow()
						if got := err == nil; got != s.want {
							t.Fatalf("step %d: allow at +%s = %v (%v), want %v", i, s.at, got, err, s.want)
						}
						if done != nil {
							held = append(held, done)
						}
						continue
					case "ok":
					case "reject":
						result = fmt.Errorf("delivering: %w", &Error{Provider: "p", Status: 422, Permanent: true})
					case "fail":
						result = &Error{Provider: "p", Status: 500}
					case "release":
						result = ErrAbandoned
					default:
						t.Fatalf("step %d: unknown op %q", i, s.op)
					}
					if len(held) == 0 {
						t.Fatalf("step %d: %s without a request held", i, s.op)
					}
					held[0](result)
					held = held[1:]
				}
			})
		})
	}
}

func TestBreakerDefaultsFromQueueConfig(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := QueueConfig{}
		cfg.setDefaults()
		b := NewBreaker(cfg.BreakerThreshold, cfg.BreakerCooldown)
		for i := range 5 {
			done, err := b.Allow()
			if err != nil {
				t.Fatalf("request %d refused: %v", i+1, err)
			}
			done(errDown)
		}
		if _, err := b.Allow(); !errors.Is(err, gobreaker.ErrOpenState) {
			t.Fatalf("after 5 failures: %v, want open", err)
		}
		time.Sleep(30*time.Second + time.Nanosecond)
		if _, err := b.Allow(); err != nil {
			t.Fatalf("after 30s: %v, want a probe", err)
		}
	})
}

// bubbleQueue returns a Queue on the system clock and real timers, to be
// used inside a synctest bubble, with the longest backoff, one worker, and
// a record of the backoff waits.
func bubbleQueue(t *testing.T, d Deliverer, cfg QueueConfig) (*Queue, outcomes, func() []time.Duration) {
	t.Helper()
	out := make(outcomes, 100)
	var mu sync.Mutex
	var waits []time.Duration
	cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return sleep(ctx, d)
	}
	cfg.Observe, cfg.Rand, cfg.Workers = out.observe, constReader(0xff), 1
	q := NewQueue(d, cfg)
	t.Cleanup(func() {
		if err := q.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return q, out, func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

func TestQueueCircuitBreaker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		var healthy atomic.Bool
		d := delivererFunc(func(context.Context, recovery.Message) error {
			calls.Add(1)
			if healthy.Load() {
				return nil
			}
			return &Error{Provider: "p", Status: 500}
		})
		q, out, _ := bubbleQueue(t, d, QueueConfig{MaxTries: 1, BreakerThreshold: 3, BreakerCooldown: 30 * time.Second})

		// send queues one message and waits for its outcome, so the steps
		// below happen in order.
		send := func(want Result, wantCalls int32) {
			t.Helper()
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			if o := out.next(t); o.Result != want {
				t.Fatalf("outcome = %s (%v), want %s", o.Result, o.Err, want)
			}
			if got := calls.Load(); got != wantCalls {
				t.Fatalf("provider called %d times, want %d", got, wantCalls)
			}
		}
		// open asserts what CircuitOpen, the source of the breaker metric, says.
		open := func(want bool) {
			t.Helper()
			if got := q.CircuitOpen(); got != want {
				t.Fatalf("CircuitOpen() = %v, want %v", got, want)
			}
		}
		open(false)
		send(ResultExhausted, 1)
		send(ResultExhausted, 2)
		open(false)
		send(ResultExhausted, 3) // the third consecutive failure opens the breaker
		open(true)
		send(ResultCircuitOpen, 3)
		time.Sleep(30*time.Second - time.Nanosecond)
		send(ResultCircuitOpen, 3)
		time.Sleep(2 * time.Nanosecond)
		open(true)               // half-open: no probe has reached the provider yet
		send(ResultExhausted, 4) // the probe fails: open again
		open(true)
		send(ResultCircuitOpen, 4)
		time.Sleep(30*time.Second + time.Nanosecond)
		healthy.Store(true)
		send(ResultSent, 5) // the probe succeeds: closed
		open(false)
		send(ResultSent, 6)
	})
}

func TestQueueCircuitBreakerIgnoresPermanentRefusals(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		d := delivererFunc(func(context.Context, recovery.Message) error {
			calls.Add(1)
			return &Error{Provider: "p", Status: 401, Code: 2, Permanent: true}
		})
		q, out, _ := bubbleQueue(t, d, QueueConfig{MaxTries: 1, BreakerThreshold: 1})
		for i := range 3 {
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			if o := out.next(t); o.Result != ResultRejected {
				t.Fatalf("message %d: outcome = %s (%v), want rejected", i+1, o.Result, o.Err)
			}
		}
		if calls.Load() != 3 {
			t.Errorf("provider called %d times, want 3", calls.Load())
		}
	})
}

func TestQueueCircuitOpenWaitsOutBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration // when the provider was called
		d := delivererFunc(func(context.Context, recovery.Message) error {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(start))
			if len(at) == 1 {
				return errDown
			}
			return nil
		})
		// One failure opens the breaker for 2s; the message waits 1s (refused),
		// then 2s, and the probe at 3s goes through.
		q, out, waits := bubbleQueue(t, d, QueueConfig{BreakerThreshold: 1, BreakerCooldown: 2 * time.Second})
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultSent || o.Attempts != 2 {
			t.Errorf("outcome = %s after %d attempts, want sent after 2", o.Result, o.Attempts)
		}
		if got := waits(); fmt.Sprint(got) != "[1s 2s]" {
			t.Errorf("waits = %v, want [1s 2s]", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(at) != "[0s 3s]" {
			t.Errorf("provider called at %v, want [0s 3s]", at)
		}
	})
}

// TestQueueCloseTellsTheBreakerNothing: a try cut short by Close is neither
// a success nor a failure of the provider.
func TestQueueCloseTellsTheBreakerNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		out := make(outcomes, 10)
		q := NewQueue(d, QueueConfig{Workers: 1, AttemptTimeout: time.Hour, BreakerThreshold: 1, Observe: out.observe})
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want one dropped", err)
		}
		if o := out.next(t); o.Result != ResultDropped || o.Attempts != 1 {
			t.Fatalf("outcome = %s after %d attempts, want dropped after 1", o.Result, o.Attempts)
		}
		c := q.breaker.Counts()
		if st := q.breaker.State(); st != gobreaker.StateClosed || c.TotalFailures != 0 || c.TotalSuccesses != 0 || c.TotalExclusions != 1 {
			t.Errorf("breaker %s with %+v, want closed with one exclusion only", st, c)
		}
	})
}
