package module

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// Support's trails: every security event of a flow, and every refusal,
// is filed under a support reference (recovery.TraceRef), which the
// refusal's answer and the lock notice show, so that support can see what
// happened to it (admin API GET /sms-recovery/trace/<reference>, caddy
// sms-recovery trace). The entries are written off the request path: a
// request only puts them in a bounded queue, which a goroutine empties
// into the store in batches; when the queue is full the entry is dropped
// and counted, never waited for.

// Defaults of the trails.
const (
	defaultTraceTTL = 30 * 24 * time.Hour
	leastTraceTTL   = time.Hour
	mostTraceTTL    = 400 * 24 * time.Hour
	// traceQueue is how many entries may wait for the store; traceBatch
	// the most written at once; traceWriteTimeout bounds one write.
	traceQueue        = 4096
	traceBatch        = 256
	traceWriteTimeout = 5 * time.Second
)

// The results of caddy_sms_recovery_trace_entries_total.
const (
	traceWritten = "written"
	traceDropped = "dropped" // the queue was full
	traceFailed  = "failed"  // the store did not take the batch
)

// tracer queues trail entries and writes them to the store in batches.
type tracer struct {
	store   storage.Trails
	ttl     time.Duration
	queue   chan storage.TrailEntry
	stop    chan struct{}
	flushes chan chan struct{} // each closed once what was queued before it is written
	stopped sync.WaitGroup
	count   func(result string, n int)
	logger  *zap.Logger // outageLogger: a store that fails is logged once in a while
	clock   recovery.Clock
}

// newTracer starts the writer of the trails into store; close stops it,
// writing what is queued.
func newTracer(store storage.Trails, ttl time.Duration, size int, clock recovery.Clock, logger *zap.Logger,
	count func(result string, n int)) *tracer {
	t := &tracer{store: store, ttl: ttl, queue: make(chan storage.TrailEntry, size), stop: make(chan struct{}),
		flushes: make(chan chan struct{}), count: count, logger: logger, clock: clock}
	t.stopped.Add(1)
	go t.run()
	return t
}

// add queues e, or drops and counts it when the queue is full: a request
// never waits for its trail.
func (t *tracer) add(e storage.TrailEntry) {
	if t == nil || e.Ref == "" {
		return
	}
	if e.At.IsZero() {
		e.At = t.clock.Now()
	}
	// In UTC, without the monotonic reading: as every store gives it back.
	e.At = e.At.UTC().Round(0)
	select {
	case t.queue <- e:
	default:
		t.count(traceDropped, 1)
	}
}

// run writes the queued entries until stop, then what is left.
func (t *tracer) run() {
	defer t.stopped.Done()
	batch := make([]storage.TrailEntry, 0, traceBatch)
	for {
		select {
		case e := <-t.queue:
			batch = append(batch[:0], e)
			batch = t.fill(batch)
			t.write(batch)
		case done := <-t.flushes:
			for batch = t.fill(batch[:0]); len(batch) > 0; batch = t.fill(batch[:0]) {
				t.write(batch)
			}
			close(done)
		case <-t.stop:
			for {
				batch = t.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				t.write(batch)
			}
		}
	}
}

// fill adds to batch what waits in the queue, up to traceBatch.
func (t *tracer) fill(batch []storage.TrailEntry) []storage.TrailEntry {
	for len(batch) < traceBatch {
		select {
		case e := <-t.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (t *tracer) write(batch []storage.TrailEntry) {
	ctx, cancel := context.WithTimeout(storage.Background(context.Background()), traceWriteTimeout)
	defer cancel()
	if err := t.store.AppendTrail(ctx, batch, t.ttl); err != nil {
		t.count(traceFailed, len(batch))
		t.logger.Error("writing support trails", zap.Int("entries", len(batch)), zap.Error(err))
		return
	}
	t.count(traceWritten, len(batch))
}

// flush returns once every entry queued before it is written (or failed),
// so that support reads, through this process, all that it has seen.
func (t *tracer) flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case t.flushes <- done:
	case <-t.stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the writer once what is queued is written.
func (t *tracer) close() error {
	close(t.stop)
	t.stopped.Wait()
	return nil
}

// traceVar is the request variable that holds the support reference of
// the flow a request has reached (its reset token's), for a refusal that
// comes after the flow's own steps: the upstream's.
const traceVar = "sms_recovery.trace"

// referenced returns rf with a support reference: its own, the flow's the
// request reached, or a new random one for a refusal with no flow. A
// shared refusal is copied, never changed.
func (h *Handler) referenced(r *http.Request, rf *refusal) *refusal {
	if rf.Reference != "" {
		return rf
	}
	ref, _ := caddyhttp.GetVar(r.Context(), traceVar).(string)
	if ref == "" {
		var err error
		if ref, err = recovery.NewTraceRef(h.traceRand); err != nil {
			return rf
		}
	}
	c := *rf
	c.Reference = ref
	return &c
}

// traceRefusal files the answer to a refusal under its reference.
func (h *Handler) traceRefusal(r *http.Request, rf *refusal) {
	h.observer.trace(storage.TrailEntry{Ref: rf.Reference, Event: eventAnswered, Status: rf.status, Error: rf.Code,
		RetryAfter: rf.RetryAfter, ClientIP: clientIP(r)})
}

// eventAnswered is the trail's entry for the answer to a refusal.
const eventAnswered = "answered"
