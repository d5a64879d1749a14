package module

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// healthRoute is the readiness route below the path prefix.
const healthRoute = "/healthz"

// healthTimeout bounds the storage check of one readiness probe.
const healthTimeout = 2 * time.Second

// healthEvery is the least time between two storage checks of the
// readiness route: the probes in between get the last check's answer.
const healthEvery = time.Second

// pinger is a storage backend that can be asked whether it answers; one
// that cannot (memory) always does.
type pinger interface {
	Ping(ctx context.Context) error
}

// health is the body of the readiness answer. It holds nothing secret: no
// address, no error text, no count.
type health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// serveHealth answers GET and HEAD <prefix>/healthz: 200 {"status":"ok"}
// when the storage answers, 503 {"status":"unavailable"} when it does not,
// so that a load balancer sends people only to instances that can serve
// them. Other methods get 405. The route needs no credentials, so anyone
// may flood it: the storage is asked at most once a second (healthCheck).
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return h.refuse(w, r, errMethod)
	}
	status, body := http.StatusOK, health{Status: "ok", Version: version.Version}
	if err := h.store.health.check(r.Context()); err != nil {
		h.outageLogger.Error("readiness check failed: storage does not answer", zap.Error(err))
		h.observer.unavailable()
		status, body.Status = http.StatusServiceUnavailable, "unavailable"
		w.Header().Set("Retry-After", "30")
	}
	if r.Method == http.MethodHead {
		// The headers of the GET answer, without its body.
		writeJSON(headOnly{w}, status, body)
		return nil
	}
	writeJSON(w, status, body)
	return nil
}

// healthCheck asks a storage whether it answers, at most once every
// healthEvery however many probes come: a probe in that time gets the last
// answer, and probes that come while a check is under way wait for it. The
// check is the storage's, not a probe's: a probe that gives up waiting
// does not end it for the others. Handlers that share a storage share its
// healthCheck.
type healthCheck struct {
	ping  pinger // nil: the storage is this process's and always answers
	clock recovery.Clock

	mu      sync.Mutex
	began   time.Time     // when the last check began; zero: none yet
	err     error         // its answer
	running chan struct{} // closed when the check under way ends; nil when none is
}

// newHealthCheck returns the check of backend, which asks it only if it is
// a pinger.
func newHealthCheck(backend any, clock recovery.Clock) *healthCheck {
	p, _ := backend.(pinger)
	return &healthCheck{ping: p, clock: clock}
}

// check returns the answer of a check begun less than healthEvery ago, or
// waits for the one under way, or makes one.
func (c *healthCheck) check(ctx context.Context) error {
	if c.ping == nil {
		return nil
	}
	c.mu.Lock()
	if wait := c.running; wait != nil {
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	}
	if now := c.clock.Now(); c.began.IsZero() || now.Sub(c.began) >= healthEvery {
		done := make(chan struct{})
		c.began, c.running = now, done
		c.mu.Unlock()
		// Detached from the probe that made it: the others wait for it.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthTimeout)
		err := c.ping.Ping(pctx)
		cancel()
		c.mu.Lock()
		c.err, c.running = err, nil
		c.mu.Unlock()
		close(done)
		return err
	}
	defer c.mu.Unlock()
	return c.err
}

// headOnly writes the headers and status of an answer and drops its body.
type headOnly struct{ http.ResponseWriter }

func (headOnly) Write(p []byte) (int, error) { return len(p), nil }
