package mail

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Results of a notice, usable as metric labels.
const (
	ResultSent      = "sent"              // the server took it
	ResultRejected  = "rejected"          // the server refused it for good (5xx)
	ResultExhausted = "retries_exhausted" // every try failed
	ResultQueueFull = "queue_full"        // Mail refused it: the queue was full
	ResultDropped   = "dropped"           // the queue closed before it went out
)

// Outcome is what became of one notice. It never holds the address in the
// clear, nor the text.
type Outcome struct {
	Result    string
	Kind      string // the notice's Kind: mailbox or alternate
	To        string // the address, masked
	Reference string
	Tries     int
	Err       error // the last try's error; nil when sent
}

// Try is one failed try, which the queue retries if it may.
type Try struct {
	Kind, To string // To masked
	Try      int
	Err      error
}

// ErrClosed is returned by Mail after Close. It wraps recovery.ErrQueueFull.
var ErrClosed = fmt.Errorf("mail queue closed: %w", recovery.ErrQueueFull)

// QueueConfig configures a Queue. Zero fields take their defaults.
type QueueConfig struct {
	// From is the From address of every notice, and its envelope sender.
	From *mail.Address
	// Mailbox delivers the notices into accounts' own mailboxes;
	// Alternate those to alternate addresses, and is Mailbox when nil.
	Mailbox, Alternate *Server
	// Size is how many notices may wait. Default: 100.
	Size int
	// Workers is how many notices are delivered at once. Default: 2.
	Workers int
	// Tries is how many times a notice is tried. Default: 5.
	Tries int
	// BaseDelay is the wait after the first failed try, doubled after each
	// further one, up to MaxDelay. Defaults: 10s and 5m.
	BaseDelay, MaxDelay time.Duration
	// Observe is called once per notice with what became of it;
	// ObserveTry for each failed try. Neither may block.
	Observe    func(Outcome)
	ObserveTry func(Try)
	// Clock dates the messages. Default: the wall clock.
	Clock recovery.Clock
	// Sleep waits d or until ctx ends, and returns ctx.Err() then.
	// Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand is the source of Message-IDs and jitter. Default: crypto/rand.
	Rand io.Reader
}

// Queue is a recovery.Mailer that delivers in the background.
type Queue struct {
	cfg    QueueConfig
	ch     chan recovery.Mail
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.RWMutex
	closed bool
}

// NewQueue starts a queue's workers; Close stops them.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	if cfg.From == nil || cfg.Mailbox == nil && cfg.Alternate == nil {
		return nil, errors.New("mail queue: no sender address or no server")
	}
	if cfg.Alternate == nil {
		cfg.Alternate = cfg.Mailbox
	}
	if cfg.Size <= 0 {
		cfg.Size = 100
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 5
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 10 * time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Observe == nil {
		cfg.Observe = func(Outcome) {}
	}
	if cfg.ObserveTry == nil {
		cfg.ObserveTry = func(Try) {}
	}
	q := &Queue{cfg: cfg, ch: make(chan recovery.Mail, cfg.Size)}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		q.wg.Go(q.work)
	}
	return q, nil
}

// Mail queues m, without waiting: recovery.ErrQueueFull when the queue
// cannot take it.
func (q *Queue) Mail(_ context.Context, m recovery.Mail) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.ch <- m:
		return nil
	default:
		q.cfg.Observe(Outcome{Result: ResultQueueFull, Kind: m.Kind, To: m.Masked, Reference: m.Reference})
		return recovery.ErrQueueFull
	}
}

// Len is how many notices wait for a worker.
func (q *Queue) Len() int { return len(q.ch) }

// Close stops taking notices and delivers those queued until ctx ends;
// what is left then is dropped, and reported so.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		q.cancel()
		return nil
	case <-ctx.Done():
		q.cancel()
		<-done
		return ctx.Err()
	}
}

func (q *Queue) work() {
	for m := range q.ch {
		q.deliver(m)
	}
}

func (q *Queue) deliver(m recovery.Mail) {
	server := q.cfg.Mailbox
	if m.Kind == recovery.MailAlternate {
		server = q.cfg.Alternate
	}
	out := Outcome{Kind: m.Kind, To: m.Masked, Reference: m.Reference}
	msg, err := Build(q.cfg.From, m, q.cfg.Clock.Now(), q.cfg.Rand)
	if err != nil {
		out.Result, out.Err = ResultRejected, err
		q.cfg.Observe(out)
		return
	}
	for try := 1; ; try++ {
		out.Tries = try
		if q.ctx.Err() != nil {
			out.Result, out.Err = ResultDropped, q.ctx.Err()
			break
		}
		err := server.Deliver(q.ctx, q.cfg.From.Address, m.To, msg)
		if err == nil {
			out.Result, out.Err = ResultSent, nil
			break
		}
		out.Err = masked(err, m)
		if Permanent(err) {
			out.Result = ResultRejected
			break
		}
		q.cfg.ObserveTry(Try{Kind: m.Kind, To: m.Masked, Try: try, Err: out.Err})
		if try >= q.cfg.Tries {
			out.Result = ResultExhausted
			break
		}
		if q.cfg.Sleep(q.ctx, q.backoff(try)) != nil {
			out.Result = ResultDropped
			break
		}
	}
	q.cfg.Observe(out)
}

// backoff is the wait after try: half of BaseDelay doubled per try, up to
// MaxDelay, and a random part of the other half, so that instances do not
// retry a server that came back all at once.
func (q *Queue) backoff(try int) time.Duration {
	d := q.cfg.BaseDelay << min(try-1, 20)
	if d > q.cfg.MaxDelay || d <= 0 {
		d = q.cfg.MaxDelay
	}
	var b [8]byte
	_, _ = io.ReadFull(q.cfg.Rand, b[:])
	half := d / 2
	return half + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(half+1))
}

// masked returns err with the notice's address masked: a server's answer
// often quotes the recipient ("550 5.1.1 <alice@example.com>: unknown").
func masked(err error, m recovery.Mail) error {
	s := err.Error()
	if !strings.Contains(strings.ToLower(s), strings.ToLower(m.To)) {
		return err
	}
	return &maskedError{msg: replaceFold(s, m.To, m.Masked), err: err}
}

// maskedError is an error whose message had an address masked; it
// unwraps to the original, for errors.Is and errors.As.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// replaceFold replaces every match of old in s, whatever its case, with new.
func replaceFold(s, old, new string) string {
	lower, lowerOld := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) || len(lowerOld) != len(old) {
		// Case folding changed a length: no offsets to map back; say
		// nothing of the answer rather than risk the address.
		return "the server's answer named the recipient (not shown)"
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lowerOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(new)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

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
var _ recovery.Mailer = (*Queue)(nil)
