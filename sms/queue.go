package sms

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sony/gobreaker/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// MaxMessageBytes is the largest message a Queue takes, counting the bytes
// of its Kind, To, Body and Reference. MessageBird takes bodies of up to 1377
// characters, so this leaves room for any body a provider would accept.
const MaxMessageBytes = 2048

// ErrClosed is returned by Send after Close. It wraps recovery.ErrQueueFull,
// so callers treat it as a queue that cannot take the message.
var ErrClosed = fmt.Errorf("sms queue closed: %w", recovery.ErrQueueFull)

// ErrCircuitOpen is the failure of a try the circuit breaker refused, or
// that a Router refused because every one of its breakers was open.
var ErrCircuitOpen = errors.New("circuit breaker open: provider failing")

// Result is what became of a message.
type Result string

// Results, usable as metric labels.
const (
	ResultSent        Result = "sent"              // the provider accepted it
	ResultRejected    Result = "rejected"          // the provider refused it for good (4xx)
	ResultExhausted   Result = "retries_exhausted" // every try failed
	ResultExpired     Result = "expired"           // its ExpiresAt passed before it went out
	ResultQueueFull   Result = "queue_full"        // Send refused it: the buffer was full
	ResultCircuitOpen Result = "circuit_open"      // its last try was refused by the circuit breaker
	ResultDropped     Result = "dropped"           // the queue was closed before it went out
	ResultRefused     Result = "refused"           // its Admit check refused it (a limit, say)

	// ResultFailed is a Try's only: the provider did not take the message,
	// or gave no answer, and another try or another provider may.
	ResultFailed Result = "failed"
)

// Outcome reports what became of one message. It never holds the body or
// the full phone number.
type Outcome struct {
	Result    Result
	Kind      string        // the message's Kind
	Reference string        // the message's Reference
	Trace     string        // the message's Trace: the support reference of its flow
	Phone     string        // the recipient, masked with recovery.MaskPhone
	Attempts  int           // requests that reached the Deliverer
	Status    int           // the provider's HTTP status for the last attempt, if known
	Code      int           // the provider's error code for the last attempt, if any
	Err       error         // the last error; nil when sent
	Latency   time.Duration // from Send to this outcome
}

// QueueConfig configures a Queue. Zero fields take their defaults.
type QueueConfig struct {
	// Size is how many messages may wait for a worker. Sends beyond it fail
	// with recovery.ErrQueueFull. With the workers' messages, at most
	// (Size + Workers) * (MaxMessageBytes + about 150 bytes of bookkeeping)
	// are held: about 3.3 MB with the defaults. Default: 1000.
	Size int
	// Workers is how many messages are delivered at once. A worker holds
	// its message back for Holdback and then waits for the provider, so a
	// queue delivers up to Workers / (Holdback + the provider's answer
	// time) messages a second: the default keeps up with 2,000 a second
	// while the provider answers within 230ms behind a 20ms holdback. An
	// idle worker costs only its goroutine. Default: DefaultWorkers.
	Workers int
	// AttemptTimeout bounds each request to the provider; a Router bounds
	// its own. Default: DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxTries is how many times a message is tried, counting tries the
	// circuit breaker refused. Default: 5.
	MaxTries int
	// BaseDelay is the backoff ceiling after the first failed try; it
	// doubles with each further try. The actual wait is drawn uniformly
	// below the ceiling ("full jitter"). Default: 1s.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling. Default: 30s.
	MaxDelay time.Duration
	// BreakerThreshold is how many consecutive failures open the circuit
	// breaker. Permanent refusals do not count: the provider answered. A
	// Router keeps breakers of its own, and the Queue none in front of it.
	// Default: DefaultBreakerThreshold.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker refuses requests before it
	// lets one probe through. Default: DefaultBreakerCooldown.
	BreakerCooldown time.Duration

	// Holdback is the least time a message waits after Send before a
	// worker delivers it. The work of delivery then falls on whatever
	// requests come later, not on the one that queued the message, so that
	// the answer time of a request does not tell whether it queued a real
	// message or a decoy. A message that waited that long in the queue
	// already goes at once, so throughput does not suffer. Default: none.
	Holdback time.Duration

	// Observe is called once for every message with what became of it,
	// from the goroutine that decided it. It must not block. Default: none.
	Observe func(Outcome)
	// ObserveTry is called for every try of every message at a provider,
	// and for every try a breaker refused, from the goroutine that made
	// it. It must not block. A Router reports its own tries to it
	// (ReportTry). Default: none.
	ObserveTry func(Try)
	// Provider names the Deliverer in the tries the Queue reports, such
	// as "messagebird". Default: none.
	Provider string
	// Clock tells the time for expiry; the circuit breaker reads time.Now.
	// Default: the wall clock (clock.Real).
	Clock recovery.Clock
	// Sleep waits d or until ctx ends, whichever is first, and returns
	// ctx.Err() in the latter case. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand is the source of backoff jitter; it need not be safe for
	// concurrent use. Default: crypto/rand.Reader.
	Rand io.Reader
}

func (c *QueueConfig) setDefaults() {
	if c.Size <= 0 {
		c.Size = 1000
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.MaxTries <= 0 {
		c.MaxTries = 5
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 30 * time.Second
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	if c.Observe == nil {
		c.Observe = func(Outcome) {}
	}
	if c.ObserveTry == nil {
		c.ObserveTry = func(Try) {}
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
}

// DefaultWorkers is QueueConfig.Workers when none is set.
const DefaultWorkers = 512

// DefaultAttemptTimeout bounds a try at a provider when nothing else
// does: QueueConfig.AttemptTimeout when none is set.
const DefaultAttemptTimeout = 15 * time.Second

// Queue is a bounded, asynchronous recovery.Sender. Send only puts the
// message in a buffer; a fixed set of workers delivers it, retrying network
// errors, timeouts and provider failures with exponential backoff and full
// jitter, or after the wait the provider asked for (Error.RetryAfter) when
// that is longer, until the message expires or its tries run out. Each
// message gets an idempotency key of its own when Send takes it, which
// every try hands to the Deliverer (IdempotencyKey). Every message taken
// is reported exactly once to QueueConfig.Observe.
type Queue struct {
	d   Deliverer
	cfg QueueConfig
	// inProcess is a deliverer that answers in this process: its
	// attempts need no timeout of their own.
	inProcess bool
	// router is d when it is a Router, which bounds, guards and reports
	// its own tries; breaker is nil then.
	router  Router
	breaker *Breaker
	ch      chan queued

	ctx    context.Context // ends when Close gives up draining
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when every worker has returned

	mu     sync.RWMutex // guards closed against sends on a closed ch
	closed bool

	randMu sync.Mutex

	dropped atomic.Int64 // messages dropped since Close began
}

type queued struct {
	m   recovery.Message
	at  time.Time // when Send took it
	key string    // its idempotency key, the same for all its tries
}

// NewQueue starts the workers of a Queue delivering through d. Close must be
// called to stop them.
func NewQueue(d Deliverer, cfg QueueConfig) *Queue {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(WithTryObserver(context.Background(), cfg.ObserveTry))
	q := &Queue{
		d:   d,
		cfg: cfg,
		inProcess: func() bool {
			ip, ok := d.(InProcess)
			return ok && ip.InProcess()
		}(),
		ch:     make(chan queued, cfg.Size),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	if r, ok := d.(Router); ok {
		q.router = r
	} else {
		q.breaker = NewBreaker(cfg.BreakerThreshold, cfg.BreakerCooldown)
	}
	q.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go q.work()
	}
	return q
}

// Send queues m for delivery without blocking. It returns
// recovery.ErrQueueFull when the buffer is full, ErrClosed after Close, and
// an error for a message over MaxMessageBytes.
func (q *Queue) Send(_ context.Context, m recovery.Message) error {
	if n := len(m.Kind) + len(m.To) + len(m.Body) + len(m.Reference); n > MaxMessageBytes {
		return fmt.Errorf("sms message of %d bytes is over the limit of %d", n, MaxMessageBytes)
	}
	// Every message gets a key of its own, a decoy too, so that it costs
	// the same.
	it := queued{m: m, at: q.cfg.Clock.Now(), key: uuid.NewString()}

	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		q.report(it, ResultDropped, 0, ErrClosed)
		return ErrClosed
	}
	select {
	case q.ch <- it:
		q.mu.RUnlock()
		return nil
	default:
		q.mu.RUnlock()
		if !m.Decoy {
			q.report(it, ResultQueueFull, 0, recovery.ErrQueueFull)
		}
		return recovery.ErrQueueFull
	}
}

// Len returns how many messages are waiting for a worker.
func (q *Queue) Len() int { return len(q.ch) }

// CircuitOpen reports whether the circuit breaker is refusing tries now: it
// opened after BreakerThreshold failures in a row and no probe has since
// reached the provider. In front of a Router, it is the Router's answer.
func (q *Queue) CircuitOpen() bool {
	if q.router != nil {
		return q.router.CircuitOpen()
	}
	return q.breaker.State() != gobreaker.StateClosed
}

// Close stops taking messages and delivers those already queued until ctx
// ends. Then it abandons the deliveries in progress and reports what is
// left as dropped. When Close returns no worker is running. It returns an
// error wrapping ctx.Err() if any message was dropped.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	first := !q.closed
	if first {
		q.closed = true
		close(q.ch)
		go func() {
			q.wg.Wait()
			close(q.done)
		}()
	}
	q.mu.Unlock()

	select {
	case <-q.done:
	case <-ctx.Done():
		q.cancel()
		<-q.done
	}
	q.cancel()
	if !first {
		return nil
	}
	if n := q.dropped.Load(); n > 0 {
		return fmt.Errorf("closing sms queue: %d messages dropped: %w", n, ctx.Err())
	}
	return nil
}

func (q *Queue) work() {
	defer q.wg.Done()
	for it := range q.ch {
		q.deliver(it)
	}
}

// deliver tries it until it is sent, refused for good, expired or out of
// tries, and reports the outcome.
func (q *Queue) deliver(it queued) {
	if it.m.Decoy {
		return // queued only so that its account cost the same; never sent
	}
	if wait := it.at.Add(q.cfg.Holdback).Sub(q.cfg.Clock.Now()); wait > 0 {
		_ = q.cfg.Sleep(q.ctx, wait) // a cancelled wait ends in the loop below
	}
	if it.m.Admit != nil && !expired(it.m, q.cfg.Clock.Now()) {
		if err := it.m.Admit(q.ctx); err != nil {
			q.report(it, ResultRefused, 0, err)
			return
		}
	}
	ctx := WithIdempotencyKey(q.ctx, it.key)
	attempts := 0
	for try := 1; ; try++ {
		if q.ctx.Err() != nil {
			q.drop(it, attempts, q.ctx.Err())
			return
		}
		if expired(it.m, q.cfg.Clock.Now()) {
			q.report(it, ResultExpired, attempts, nil)
			return
		}

		var err error
		if done, refused := q.allow(); refused == nil {
			attempts++
			err = q.attempt(ctx, it.m)
			switch {
			case err == nil:
				done(nil)
				q.tried(it.m, ResultSent, nil)
				q.report(it, ResultSent, attempts, nil)
				return
			case q.ctx.Err() != nil:
				done(ErrAbandoned)
				q.drop(it, attempts, err)
				return
			case permanent(err):
				done(err)
				q.tried(it.m, ResultRejected, err)
				q.report(it, ResultRejected, attempts, err)
				return
			}
			done(err)
			q.tried(it.m, ResultFailed, err)
		} else {
			err = ErrCircuitOpen
			q.tried(it.m, ResultCircuitOpen, err)
		}

		if try >= q.cfg.MaxTries {
			result := ResultExhausted
			if errors.Is(err, ErrCircuitOpen) {
				result = ResultCircuitOpen
			}
			q.report(it, result, attempts, err)
			return
		}
		delay := max(q.backoff(try), retryAfter(err))
		if !it.m.ExpiresAt.IsZero() && !q.cfg.Clock.Now().Add(delay).Before(it.m.ExpiresAt) {
			q.report(it, ResultExpired, attempts, err)
			return
		}
		if q.cfg.Sleep(q.ctx, delay) != nil {
			q.drop(it, attempts, err)
			return
		}
	}
}

// allow asks the breaker whether a try may go out now; in front of a
// Router, which keeps breakers of its own, it always may.
func (q *Queue) allow() (done func(error), err error) {
	if q.breaker == nil {
		return noDone, nil
	}
	return q.breaker.Allow()
}

func noDone(error) {}

// tried reports a try of m that ended in r to ObserveTry. A Router reports
// its tries itself.
func (q *Queue) tried(m recovery.Message, r Result, err error) {
	if q.router != nil {
		return
	}
	t := Try{Provider: q.cfg.Provider, Position: 1, Result: r, Reference: m.Reference, Err: err}
	var perr *Error
	if errors.As(err, &perr) {
		t.Status = perr.Status
	}
	q.cfg.ObserveTry(t)
}

// attempt hands m to the deliverer once, within AttemptTimeout, under ctx:
// the queue's context with m's idempotency key. A deliverer that answers
// in this process (InProcess), such as the outbox, sends no request to
// bound and gets ctx as it is; a Router bounds each of its tries itself.
func (q *Queue) attempt(ctx context.Context, m recovery.Message) error {
	if q.inProcess || q.router != nil {
		return q.d.Deliver(ctx, m)
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.AttemptTimeout)
	defer cancel()
	return q.d.Deliver(ctx, m)
}

// retryAfter is the wait the provider asked for in err, if any.
func retryAfter(err error) time.Duration {
	var perr *Error
	if errors.As(err, &perr) {
		return perr.RetryAfter
	}
	return 0
}

// backoff returns the wait after the given failed try: uniform in
// [0, min(MaxDelay, BaseDelay * 2^(try-1))].
func (q *Queue) backoff(try int) time.Duration {
	ceiling := q.cfg.BaseDelay
	for i := 1; i < try && ceiling < q.cfg.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, q.cfg.MaxDelay)

	var buf [8]byte
	q.randMu.Lock()
	_, err := io.ReadFull(q.cfg.Rand, buf[:])
	q.randMu.Unlock()
	if err != nil {
		return ceiling // without randomness, wait the longest
	}
	// floor(r * (ceiling+1) / 2^64) for a random 64-bit r: [0, ceiling].
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(buf[:]), uint64(ceiling)+1)
	return time.Duration(hi)
}

// drop reports a message abandoned because Close stopped waiting for it.
func (q *Queue) drop(it queued, attempts int, err error) {
	q.dropped.Add(1)
	q.report(it, ResultDropped, attempts, err)
}

func (q *Queue) report(it queued, r Result, attempts int, err error) {
	o := Outcome{
		Result:    r,
		Kind:      it.m.Kind,
		Reference: it.m.Reference,
		Trace:     it.m.Trace,
		Phone:     it.m.Masked,
		Attempts:  attempts,
		Err:       err,
		Latency:   q.cfg.Clock.Now().Sub(it.at),
	}
	if o.Phone == "" {
		o.Phone = recovery.MaskPhone(it.m.To)
	}
	if err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			o.Status, o.Code = perr.Status, perr.Code
		}
	}
	q.cfg.Observe(o)
}

func expired(m recovery.Message, now time.Time) bool {
	return !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)
}

// sleep is QueueConfig.Sleep when none is set.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Interface guards
var _ recovery.Sender = (*Queue)(nil)
