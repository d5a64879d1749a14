package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestMain fails the package if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSleeper records the waits asked of it and moves the clock instead of
// waiting.
type fakeSleeper struct {
	clock *clock.Manual
	mu    sync.Mutex
	waits []time.Duration
}

func (s *fakeSleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	s.clock.Advance(d)
	return ctx.Err()
}

func (s *fakeSleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// constReader is an endless stream of one byte: 0xff gives the longest
// backoff, 0 the shortest.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

type delivererFunc func(ctx context.Context, m recovery.Message) error

func (f delivererFunc) Deliver(ctx context.Context, m recovery.Message) error { return f(ctx, m) }

// outcomes collects what a Queue reports.
type outcomes chan Outcome

func (o outcomes) observe(x Outcome) { o <- x }

func (o outcomes) next(t *testing.T) Outcome {
	t.Helper()
	select {
	case x := <-o:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome reported")
		return Outcome{}
	}
}

func (o outcomes) none(t *testing.T) {
	t.Helper()
	select {
	case x := <-o:
		t.Fatalf("unexpected outcome %+v", x)
	default:
	}
}

var errDown = errors.New("connection refused")

var testMessage = recovery.Message{
	Kind:      "code",
	To:        "+31612345678",
	Body:      "Example Mail password reset code: 493817\n\n@mail.example.com #493817",
	Reference: "flow-7f3a",
	Validity:  5 * time.Minute,
}

// testQueue returns a Queue with a fake clock and sleep, the longest
// backoff, and a breaker that stays closed unless the test says otherwise.
func testQueue(t *testing.T, d Deliverer, cfg QueueConfig) (*Queue, outcomes, *clock.Manual, *fakeSleeper) {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	sleeper := &fakeSleeper{clock: clk}
	out := make(outcomes, 100)
	cfg.Clock, cfg.Sleep, cfg.Observe = clk, sleeper.Sleep, out.observe
	if cfg.Rand == nil {
		cfg.Rand = constReader(0xff)
	}
	if cfg.BreakerThreshold == 0 {
		cfg.BreakerThreshold = 1000
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	q := NewQueue(d, cfg)
	t.Cleanup(func() {
		if err := q.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return q, out, clk, sleeper
}

func TestQueueDelivers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		errs         []error // what the deliverer answers, in turn; nil after the last
		maxTries     int
		wantResult   Result
		wantAttempts int
		wantWaits    []time.Duration
		wantCode     int
	}{
		{
			name:       "first try",
			wantResult: ResultSent, wantAttempts: 1,
		},
		{
			name:       "after two retryable failures",
			errs:       []error{errDown, &Error{Provider: "p", Status: 503}},
			wantResult: ResultSent, wantAttempts: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name:       "permanent refusal is not retried",
			errs:       []error{&Error{Provider: "p", Status: 401, Code: 2, Permanent: true}},
			wantResult: ResultRejected, wantAttempts: 1, wantCode: 2,
		},
		{
			name:       "retries exhausted",
			errs:       []error{errDown, errDown, errDown, errDown},
			maxTries:   3,
			wantResult: ResultExhausted, wantAttempts: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name:       "backoff capped at MaxDelay",
			errs:       []error{errDown, errDown, errDown, errDown, errDown},
			maxTries:   6,
			wantResult: ResultSent, wantAttempts: 6,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name:       "Retry-After longer than the backoff is waited out",
			errs:       []error{&Error{Provider: "p", Status: 429, RetryAfter: 20 * time.Second}},
			wantResult: ResultSent, wantAttempts: 2, wantWaits: []time.Duration{20 * time.Second},
		},
		{
			name:       "Retry-After shorter than the backoff: the backoff",
			errs:       []error{&Error{Provider: "p", Status: 503, RetryAfter: 100 * time.Millisecond}},
			wantResult: ResultSent, wantAttempts: 2, wantWaits: []time.Duration{time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			d := delivererFunc(func(ctx context.Context, m recovery.Message) error {
				n := int(calls.Add(1))
				if _, ok := ctx.Deadline(); !ok {
					t.Error("attempt without a deadline")
				}
				if n <= len(tt.errs) {
					return tt.errs[n-1]
				}
				return nil
			})
			q, out, _, sleeper := testQueue(t, d, QueueConfig{MaxTries: tt.maxTries, MaxDelay: 5 * time.Second})
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			o := out.next(t)
			if o.Result != tt.wantResult || o.Attempts != tt.wantAttempts || o.Code != tt.wantCode {
				t.Errorf("outcome = %s after %d attempts, code %d; want %s after %d, code %d",
					o.Result, o.Attempts, o.Code, tt.wantResult, tt.wantAttempts, tt.wantCode)
			}
			if int(calls.Load()) != tt.wantAttempts {
				t.Errorf("deliverer called %d times, want %d", calls.Load(), tt.wantAttempts)
			}
			if got := sleeper.Waits(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tt.wantWaits)
			}
			if o.Reference != testMessage.Reference || o.Kind != "code" || o.Phone != recovery.MaskPhone("+31612345678") {
				t.Errorf("outcome identifies the message as %q %q %q", o.Kind, o.Reference, o.Phone)
			}
			if (o.Err == nil) != (tt.wantResult == ResultSent) {
				t.Errorf("outcome error = %v for %s", o.Err, o.Result)
			}
			if err := q.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			out.none(t) // no worker is left to report the message again
		})
	}
}

func TestQueueBackoffJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rand []byte // read big-endian as a fraction of 2^64
		try  int
		want time.Duration
	}{
		{"first try, longest", bytes.Repeat([]byte{0xff}, 8), 1, 100 * time.Millisecond},
		{"third try, longest", bytes.Repeat([]byte{0xff}, 8), 3, 400 * time.Millisecond},
		{"capped", bytes.Repeat([]byte{0xff}, 8), 10, time.Second},
		{"shortest", make([]byte, 8), 3, 0},
		{"middle", []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, 3, 200 * time.Millisecond},
		{"quarter", []byte{0x40, 0, 0, 0, 0, 0, 0, 0}, 2, 50 * time.Millisecond},
		{"reader fails: longest", nil, 2, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &Queue{cfg: QueueConfig{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Rand: bytes.NewReader(tt.rand)}}
			if got := q.backoff(tt.try); got != tt.want {
				t.Errorf("backoff(%d) = %s, want %s", tt.try, got, tt.want)
			}
		})
	}
	t.Run("spread over the range", func(t *testing.T) {
		t.Parallel()
		q := &Queue{cfg: QueueConfig{BaseDelay: time.Second, MaxDelay: time.Second}}
		q.cfg.setDefaults()
		var low, high int
		for range 1000 {
			d := q.backoff(1)
			if d < 0 || d > time.Second {
				t.Fatalf("backoff = %s, outside [0, 1s]", d)
			}
			if d < 250*time.Millisecond {
				low++
			}
			if d > 750*time.Millisecond {
				high++
			}
		}
		if low < 150 || high < 150 {
			t.Errorf("%d waits under 250ms and %d over 750ms of 1000; want about 250 each", low, high)
		}
	})
}

func TestQueueExpiry(t *testing.T) {
	t.Parallel()
	t.Run("expired before the first try", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		d := delivererFunc(func(context.Context, recovery.Message) error { calls.Add(1); return nil })
		q, out, clk, _ := testQueue(t, d, QueueConfig{})
		m := testMessage
		m.ExpiresAt = clk.Now()
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultExpired || o.Attempts != 0 {
			t.Errorf("outcome = %s after %d attempts, want expired after 0", o.Result, o.Attempts)
		}
		if calls.Load() != 0 {
			t.Errorf("deliverer called %d times for an expired message", calls.Load())
		}
	})
	t.Run("expires during backoff", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		d := delivererFunc(func(context.Context, recovery.Message) error { calls.Add(1); return errDown })
		q, out, clk, sleeper := testQueue(t, d, QueueConfig{})
		m := testMessage
		m.ExpiresAt = clk.Now().Add(2500 * time.Millisecond)
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		// Tries at 0s and 1s; the next wait (2s) would end past ExpiresAt.
		o := out.next(t)
		if o.Result != ResultExpired || o.Attempts != 2 || !errors.Is(o.Err, errDown) {
			t.Errorf("outcome = %s after %d attempts (%v), want expired after 2 with the last error", o.Result, o.Attempts, o.Err)
		}
		if got := sleeper.Waits(); len(got) != 1 {
			t.Errorf("waits = %v, want one", got)
		}
	})
}

// TestQueueRetryAfterPastExpiry: a provider that asks for a wait longer
// than the message has left gets no second request; the message is
// reported expired with the provider's answer.
func TestQueueRetryAfterPastExpiry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	slowDown := &Error{Provider: "p", Status: 429, RetryAfter: time.Hour}
	d := delivererFunc(func(context.Context, recovery.Message) error { calls.Add(1); return slowDown })
	q, out, clk, sleeper := testQueue(t, d, QueueConfig{})
	m := testMessage
	m.ExpiresAt = clk.Now().Add(5 * time.Minute)
	if err := q.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	o := out.next(t)
	if o.Result != ResultExpired || o.Attempts != 1 || o.Status != 429 || !errors.Is(o.Err, slowDown) {
		t.Errorf("outcome = %s after %d attempts, status %d (%v); want expired after 1, status 429", o.Result, o.Attempts, o.Status, o.Err)
	}
	if calls.Load() != 1 || len(sleeper.Waits()) != 0 {
		t.Errorf("deliverer called %d times after waits %v; want once, no wait", calls.Load(), sleeper.Waits())
	}
}

// TestQueueIdempotencyKey: every try of one message carries the same key,
// and no two messages share one, even with equal contents, so that a
// provider that dedupes by key sends each message once and a resend of
// the same text again.
func TestQueueIdempotencyKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	keys := map[string][]string{} // by body: the key of each try
	d := delivererFunc(func(ctx context.Context, m recovery.Message) error {
		mu.Lock()
		defer mu.Unlock()
		keys[m.Body] = append(keys[m.Body], IdempotencyKey(ctx))
		if len(keys[m.Body]) < 3 {
			return &Error{Provider: "p", Status: 503}
		}
		return nil
	})
	q, out, _, _ := testQueue(t, d, QueueConfig{})
	first, second := testMessage, testMessage
	second.Body += " (again)"
	for _, m := range []recovery.Message{first, second} {
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if o := out.next(t); o.Result != ResultSent || o.Attempts != 3 {
			t.Fatalf("outcome = %s after %d attempts, want sent after 3", o.Result, o.Attempts)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	a, b := keys[first.Body], keys[second.Body]
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("tries = %d and %d, want 3 each", len(a), len(b))
	}
	if a[0] == "" || a[0] != a[1] || a[1] != a[2] || b[0] != b[1] || b[1] != b[2] {
		t.Errorf("keys of the tries = %q and %q, want one non-empty key per message", a, b)
	}
	if a[0] == b[0] {
		t.Errorf("two messages share the key %q", a[0])
	}

	t.Run("equal messages, different keys", func(t *testing.T) {
		t.Parallel()
		seen := make(chan string, 2)
		d := delivererFunc(func(ctx context.Context, _ recovery.Message) error { seen <- IdempotencyKey(ctx); return nil })
		q, out, _, _ := testQueue(t, d, QueueConfig{})
		for range 2 {
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			out.next(t)
		}
		if k1, k2 := <-seen, <-seen; k1 == "" || k1 == k2 {
			t.Errorf("keys = %q, %q; want two different keys", k1, k2)
		}
	})
}

func TestIdempotencyKeyContext(t *testing.T) {
	t.Parallel()
	if k := IdempotencyKey(context.Background()); k != "" {
		t.Errorf("key of a bare context = %q, want none", k)
	}
	ctx := WithIdempotencyKey(context.Background(), "k1")
	if k := IdempotencyKey(ctx); k != "k1" {
		t.Errorf("key = %q, want k1", k)
	}
	inner, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if k := IdempotencyKey(inner); k != "k1" {
		t.Errorf("key of a derived context = %q, want k1: a sender that wraps others passes it on", k)
	}
}

func TestQueueAttemptTimeout(t *testing.T) {
	t.Parallel()
	d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
		<-ctx.Done()
		return ctx.Err()
	})
	q, out, _, _ := testQueue(t, d, QueueConfig{AttemptTimeout: 20 * time.Millisecond, MaxTries: 2})
	start := time.Now()
	if err := q.Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	o := out.next(t)
	if o.Result != ResultExhausted || o.Attempts != 2 || !errors.Is(o.Err, context.DeadlineExceeded) {
		t.Errorf("outcome = %s after %d attempts (%v), want retries_exhausted after 2 timeouts", o.Result, o.Attempts, o.Err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("two 20ms attempts took %s", elapsed)
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	d := delivererFunc(func(context.Context, recovery.Message) error {
		started <- struct{}{}
		<-release
		return nil
	})
	q, out, _, _ := testQueue(t, d, QueueConfig{Size: 2})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before testQueue's Close, even if the test fails early
	if err := q.Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	<-started // the worker holds the first message
	for i := range 2 {
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatalf("send %d: %v", i+2, err)
		}
	}
	if q.Len() != 2 {
		t.Errorf("Len = %d, want 2", q.Len())
	}
	if err := q.Send(context.Background(), testMessage); !errors.Is(err, recovery.ErrQueueFull) {
		t.Fatalf("send over the size = %v, want ErrQueueFull", err)
	}
	if o := out.next(t); o.Result != ResultQueueFull || o.Phone != recovery.MaskPhone("+31612345678") {
		t.Errorf("outcome = %+v, want queue_full", o)
	}
	unblock()
	for range 3 {
		if o := out.next(t); o.Result != ResultSent {
			t.Errorf("outcome = %s, want sent", o.Result)
		}
	}
}

func TestQueueRefusesLargeMessages(t *testing.T) {
	t.Parallel()
	d := delivererFunc(func(context.Context, recovery.Message) error { return nil })
	q, out, _, _ := testQueue(t, d, QueueConfig{})
	m := testMessage
	m.Body = strings.Repeat("x", MaxMessageBytes)
	err := q.Send(context.Background(), m)
	if err == nil || errors.Is(err, recovery.ErrQueueFull) {
		t.Fatalf("Send of %d bytes = %v, want a size error", len(m.Body), err)
	}
	if strings.Contains(err.Error(), "xxx") {
		t.Errorf("error %q quotes the body", err)
	}
	m.Body = strings.Repeat("x", MaxMessageBytes-len(m.Kind)-len(m.To)-len(m.Reference))
	if err := q.Send(context.Background(), m); err != nil {
		t.Errorf("Send of a message at the limit: %v", err)
	}
	if o := out.next(t); o.Result != ResultSent {
		t.Errorf("outcome = %s, want sent", o.Result)
	}
}

func TestQueueClose(t *testing.T) {
	t.Parallel()
	t.Run("drains what is queued", func(t *testing.T) {
		t.Parallel()
		// In a bubble, time moves only once every goroutine in it is
		// blocked: the workers' deliveries of a millisecond hold them while
		// the messages are sent, so Close finds all but theirs queued.
		synctest.Test(t, func(t *testing.T) { testQueueCloseDrains(t) })
	})
	t.Run("reports what it cannot deliver in time as dropped", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 10)
		var calls atomic.Int32
		d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
			calls.Add(1)
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		out := make(outcomes, 100)
		q := NewQueue(d, QueueConfig{Workers: 1, AttemptTimeout: time.Hour, Observe: out.observe})
		for range 5 {
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
		}
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := q.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 messages dropped") {
			t.Errorf("Close = %v, want 5 dropped and the deadline", err)
		}
		if len(out) != 5 {
			t.Fatalf("%d outcomes, want 5", len(out))
		}
		for range 5 {
			if o := out.next(t); o.Result != ResultDropped {
				t.Errorf("outcome = %s, want dropped", o.Result)
			}
		}
		if calls.Load() != 1 {
			t.Errorf("deliverer called %d times, want 1", calls.Load())
		}
	})
	t.Run("stops a backoff wait", func(t *testing.T) {
		t.Parallel()
		tried := make(chan struct{}, 1)
		d := delivererFunc(func(context.Context, recovery.Message) error {
			select {
			case tried <- struct{}{}:
			default:
			}
			return errDown
		})
		out := make(outcomes, 10)
		q := NewQueue(d, QueueConfig{BaseDelay: time.Hour, Rand: constReader(0xff), Observe: out.observe})
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatal(err)
		}
		// The first attempt has failed: the message now waits an hour to
		// be tried again, which only Close's deadline can cut short.
		<-tried
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := q.Close(ctx); err == nil {
			t.Error("Close returned nil with a message left")
		}
		if o := out.next(t); o.Result != ResultDropped || o.Attempts != 1 || !errors.Is(o.Err, errDown) {
			t.Errorf("outcome = %s after %d attempts (%v), want dropped after 1 with the last error", o.Result, o.Attempts, o.Err)
		}
	})
}

// TestQueueFloodWhileProviderDown sends 10,000 messages to a provider that
// never answers and checks that goroutines and heap stay bounded by the
// queue's size, and that every message is reported exactly once.
func TestQueueFloodWhileProviderDown(t *testing.T) {
	// Not parallel: it measures the whole process.
	const (
		n       = 10_000
		size    = 64
		workers = 4
		bodyLen = 1000
	)
	runtime.GC()
	baseG := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
		<-ctx.Done() // down: no answer until the attempt is abandoned
		return ctx.Err()
	})
	var counts sync.Map // Result -> *atomic.Int64
	observe := func(o Outcome) {
		c, _ := counts.LoadOrStore(o.Result, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	}
	q := NewQueue(d, QueueConfig{Size: size, Workers: workers, AttemptTimeout: time.Hour, Observe: observe})

	accepted, peakG := 0, 0
	for i := range n {
		m := testMessage
		// A distinct body per message, so that keeping them would show.
		m.Body = fmt.Sprintf("%05d", i) + strings.Repeat("x", bodyLen)
		switch err := q.Send(context.Background(), m); {
		case err == nil:
			accepted++
		case !errors.Is(err, recovery.ErrQueueFull):
			t.Fatalf("send %d: %v", i, err)
		}
		if i%500 == 0 {
			peakG = max(peakG, runtime.NumGoroutine())
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	held := int64(size+workers) * (MaxMessageBytes + 256)

	t.Logf("%d sends: %d accepted, %d refused; goroutines %d -> peak %d; heap grew %d KiB (bound %d KiB)",
		n, accepted, n-accepted, baseG, peakG, grown/1024, held/1024)
	if accepted > size+workers {
		t.Errorf("accepted %d messages, more than size+workers = %d", accepted, size+workers)
	}
	if peakG > baseG+workers+2 {
		t.Errorf("goroutines peaked at %d, want at most %d", peakG, baseG+workers+2)
	}
	if grown > held+1<<20 {
		t.Errorf("heap grew by %d bytes, want under %d", grown, held+1<<20)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); err == nil {
		t.Error("Close returned nil with messages left")
	}
	count := func(r Result) int64 {
		if c, ok := counts.Load(r); ok {
			return c.(*atomic.Int64).Load()
		}
		return 0
	}
	if got := count(ResultQueueFull); got != int64(n-accepted) {
		t.Errorf("%d reported queue_full, want %d", got, n-accepted)
	}
	if got := count(ResultDropped); got != int64(accepted) {
		t.Errorf("%d reported dropped, want %d", got, accepted)
	}
	if g := runtime.NumGoroutine(); g > baseG {
		t.Logf("goroutines after Close: %d (base %d); goleak checks at exit", g, baseG)
	}
}

// BenchmarkQueueSend measures Send, the only part the request path waits
// for, with a deliverer that takes no time.
func BenchmarkQueueSend(b *testing.B) {
	d := delivererFunc(func(context.Context, recovery.Message) error { return nil })
	q := NewQueue(d, QueueConfig{Size: 1024})
	defer q.Close(context.Background())
	var full atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Send(context.Background(), testMessage); err != nil {
				full.Add(1)
			}
		}
	})
	b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
}

// BenchmarkQueueSendProviderDown floods a queue whose provider never
// answers and reports the goroutines and the heap in use at the end.
func BenchmarkQueueSendProviderDown(b *testing.B) {
	d := delivererFunc(func(ctx context.Context, _ recovery.Message) error {
		<-ctx.Done()
		return ctx.Err()
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	q := NewQueue(d, QueueConfig{Size: 1000, AttemptTimeout: time.Hour})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := testMessage
		m.Body = strings.Repeat("x", 300) + fmt.Sprint(i)
		_ = q.Send(context.Background(), m)
	}
	b.StopTimer()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024, "heap-KiB")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_ = q.Close(ctx)
}

func TestQueueAdmit(t *testing.T) {
	t.Parallel()
	errLimit := errors.New("phone limit reached")
	for _, tc := range []struct {
		name   string
		admit  error
		want   Result
		called int
	}{
		{"admitted", nil, ResultSent, 1},
		{"refused", errLimit, ResultRefused, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls, admits atomic.Int64
			q, out, _, _ := testQueue(t, delivererFunc(func(context.Context, recovery.Message) error {
				calls.Add(1)
				return nil
			}), QueueConfig{})
			m := testMessage
			m.ExpiresAt = time.Now().Add(time.Hour)
			m.Admit = func(context.Context) error { admits.Add(1); return tc.admit }
			if err := q.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			o := out.next(t)
			if o.Result != tc.want || (tc.admit != nil && !errors.Is(o.Err, tc.admit)) {
				t.Fatalf("outcome %+v, want %s", o, tc.want)
			}
			if calls.Load() != int64(tc.called) || admits.Load() != 1 {
				t.Fatalf("delivered %d times, admitted %d times", calls.Load(), admits.Load())
			}
		})
	}
}

// TestQueueDropsDecoysUnseen: a decoy is queued like any message, then
// neither delivered, nor admitted, nor reported; the message after it is.
func TestQueueDropsDecoysUnseen(t *testing.T) {
	t.Parallel()
	delivered := make(chan recovery.Message, 10)
	q, out, _, _ := testQueue(t, delivererFunc(func(_ context.Context, m recovery.Message) error {
		delivered <- m
		return nil
	}), QueueConfig{})
	admitted := false
	decoy := recovery.Message{Kind: "code", To: "+31600000000", Body: "decoy", Decoy: true,
		Admit: func(context.Context) error { admitted = true; return nil }}
	real := recovery.Message{Kind: "code", To: "+31612345678", Body: "real"}
	for _, m := range []recovery.Message{decoy, real} {
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// One worker takes messages in order: once the real one is reported,
	// the decoy before it is done with.
	if o := out.next(t); o.Result != ResultSent || o.Phone != recovery.MaskPhone(real.To) {
		t.Fatalf("first outcome %+v, want the real message sent", o)
	}
	out.none(t)
	if m := <-delivered; m.Body != "real" || len(delivered) != 0 {
		t.Errorf("delivered %q and %d more, want only the real message", m.Body, len(delivered))
	}
	if admitted {
		t.Error("the decoy's Admit was asked")
	}
}

// TestQueueHoldsBack: a message waits Holdback after Send before delivery,
// so that its cost falls on later requests; one that has waited that long
// already in the queue goes at once.
func TestQueueHoldsBack(t *testing.T) {
	t.Parallel()
	delivering, release := make(chan string), make(chan struct{})
	q, out, clk, sleeper := testQueue(t, delivererFunc(func(_ context.Context, m recovery.Message) error {
		delivering <- m.Body
		if m.Body == "first" {
			<-release // hold the one worker while the second message ages
		}
		return nil
	}), QueueConfig{Holdback: 20 * time.Millisecond})
	send := func(body string) {
		t.Helper()
		if err := q.Send(context.Background(), recovery.Message{Kind: "code", To: "+31612345678", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	send("first")
	if b := <-delivering; b != "first" {
		t.Fatalf("delivering %q first", b)
	}
	send("second")
	clk.Advance(time.Second) // the second message waits in the queue meanwhile
	close(release)
	if b := <-delivering; b != "second" {
		t.Fatalf("delivering %q second", b)
	}
	for range 2 {
		if o := out.next(t); o.Result != ResultSent {
			t.Fatalf("outcome %+v, want sent", o)
		}
	}
	if w := sleeper.Waits(); len(w) != 1 || w[0] != 20*time.Millisecond {
		t.Errorf("waits %v, want one hold of 20ms, for the first message only", w)
	}
}

// testQueueCloseDrains runs in a synctest bubble: see TestQueueClose.
func testQueueCloseDrains(t *testing.T) {
	const workers, messages = 2, 20
	var sent atomic.Int32
	gate := make(chan struct{}) // deliveries wait here until the test opens it
	d := delivererFunc(func(context.Context, recovery.Message) error {
		<-gate
		sent.Add(1)
		return nil
	})
	out := make(outcomes, 100)
	q := NewQueue(d, QueueConfig{Workers: workers, Observe: out.observe})
	for i := range messages {
		if err := q.Send(context.Background(), testMessage); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	synctest.Wait() // each worker has taken a message and is delivering it
	if n := q.Len(); n != messages-workers {
		t.Fatalf("Len before Close = %d, want %d: Close would have nothing to drain", n, messages-workers)
	}
	closed := make(chan error, 1)
	go func() { closed <- q.Close(context.Background()) }()
	synctest.Wait() // Close waits for the deliveries under way and queued
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while %d messages were undelivered", err, messages-int(sent.Load()))
	default:
	}
	close(gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sent.Load() != messages || len(out) != messages {
		t.Errorf("%d delivered and %d reported, want %d", sent.Load(), len(out), messages)
	}
	for range len(out) {
		if o := out.next(t); o.Result != ResultSent {
			t.Errorf("outcome = %s, want sent", o.Result)
		}
	}
	err := q.Send(context.Background(), testMessage)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, recovery.ErrQueueFull) {
		t.Errorf("Send after Close = %v, want ErrClosed wrapping ErrQueueFull", err)
	}
	if o := out.next(t); o.Result != ResultDropped {
		t.Errorf("outcome of a send after Close = %s, want dropped", o.Result)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
