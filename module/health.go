package module

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// healthRoute is the readiness route below the path prefix.
const healthRoute = "/healthz"

// healthTimeout bounds the storage check of one readiness probe.
const healthTimeout = 2 * time.Second

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
// them. Other methods get 405.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, errMethod)
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	status, body := http.StatusOK, health{Status: "ok", Version: version.Version}
	if err := h.pingStore(r.Context()); err != nil {
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

// pingStore asks the storage whether it answers.
func (h *Handler) pingStore(ctx context.Context) error {
	p, ok := h.store.backend.(pinger)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return p.Ping(ctx)
}

// headOnly writes the headers and status of an answer and drops its body.
type headOnly struct{ http.ResponseWriter }

func (headOnly) Write(p []byte) (int, error) { return len(p), nil }
