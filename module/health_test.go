package module

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// probe asks the readiness route with method.
func (g *opsGateway) probe(method string) *httptest.ResponseRecorder {
	g.t.Helper()
	r := httptest.NewRequest(method, "https://"+opsHost+"/recovery/healthz", nil)
	w := httptest.NewRecorder()
	if err := g.h.ServeHTTP(w, r, g.upstream); err != nil {
		g.t.Fatalf("%s /recovery/healthz: %v", method, err)
	}
	return w
}

// wantHealth asserts a readiness answer: its status, and a body that says
// exactly {"status":..., "version":...}.
func wantHealth(t *testing.T, w *httptest.ResponseRecorder, status int, word string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("healthz: status %d %s, want %d", w.Code, w.Body, status)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("healthz: Cache-Control %q, want no-store", got)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("healthz body %q: %v", w.Body, err)
	}
	if len(body) != 2 || body["status"] != word || body["version"] != version.Version {
		t.Errorf("healthz body %s, want {status: %q, version: %q} and nothing else", w.Body, word, version.Version)
	}
}

func TestHealthMemory(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, map[string]string{}, nil)
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")

	head := g.probe(http.MethodHead)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Type") == "" {
		t.Errorf("HEAD healthz: %d, %d bytes of body, Content-Type %q", head.Code, head.Body.Len(), head.Header().Get("Content-Type"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		w := g.probe(m)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s healthz: %d, Allow %q; want 405 and GET, HEAD", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

// TestHealthRedis takes Redis away behind a cut proxy: the probe answers
// 503 while it is away, says nothing of where it is or why, counts the
// outage, and answers 200 again once it is back.
func TestHealthRedis(t *testing.T) {
	t.Parallel()
	redisTestStorage(t) // skips without Redis, fails under CI
	addr := strings.TrimPrefix(strings.TrimSuffix(redistest.URL(), "/0"), "redis://")
	proxy := tcpproxy.Start(t, addr)
	g := newOpsGateway(t, map[string]string{}, func(h *Handler) {
		h.StorageRaw = guest(&redisstore.Store{URL: "redis://" + proxy.Addr() + "/0", Prefix: "smsrec-health-test:", AllowVolatile: true}, "backend")
	})
	clk := clock.NewManual(time.Now())
	g.h.store.health.clock = clk
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")

	proxy.Cut()
	clk.Advance(healthEvery) // the last answer is a second old
	w := g.probe(http.MethodGet)
	wantHealth(t, w, http.StatusServiceUnavailable, "unavailable")
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if body := w.Body.String(); strings.Contains(body, proxy.Addr()) || strings.Contains(body, "redis") {
		t.Errorf("the 503 body tells where the storage is: %s", body)
	}
	if head := g.probe(http.MethodHead); head.Code != http.StatusServiceUnavailable || head.Body.Len() != 0 {
		t.Errorf("HEAD healthz with Redis away: %d, %d bytes", head.Code, head.Body.Len())
	}
	if n := unavailableCount(t, g); n != 2 {
		t.Errorf("caddy_sms_recovery_unavailable_total = %v after two failed probes, want 2", n)
	}

	proxy.Restore()
	clk.Advance(healthEvery)
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")
}

// TestHealthUnreachableRedis: a Redis that never answered (nothing listens)
// loads the site, and its probe answers 503.
func TestHealthUnreachableRedis(t *testing.T) {
	t.Parallel()
	proxy := tcpproxy.Start(t, "127.0.0.1:1")
	proxy.Cut()
	g := newOpsGateway(t, map[string]string{}, func(h *Handler) {
		h.StorageRaw = guest(&redisstore.Store{URL: "redis://" + proxy.Addr() + "/0"}, "backend")
	})
	wantHealth(t, g.probe(http.MethodGet), http.StatusServiceUnavailable, "unavailable")
	// A recovery request fails alike, and is counted alike.
	if w := g.post("/start", "192.0.2.60", map[string]string{"account": "alice@example.com"}); w.Code != http.StatusServiceUnavailable {
		t.Errorf("start with Redis unreachable: %d %s", w.Code, w.Body)
	}
	if n := unavailableCount(t, g); n != 2 {
		t.Errorf("caddy_sms_recovery_unavailable_total = %v, want 2", n)
	}
}

// unavailableCount reads caddy_sms_recovery_unavailable_total of g's site.
func unavailableCount(t *testing.T, g *opsGateway) float64 {
	t.Helper()
	families, err := g.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_sms_recovery_unavailable_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if siteOf(m) == g.h.SiteName {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func siteOf(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "site" {
			return l.GetValue()
		}
	}
	return ""
}

// TestLimitsSummary is the limits line of the log at provision, with the
// defaults a demo runs with.
func TestLimitsSummary(t *testing.T) {
	got := limitsSummary((&Handler{}).limits())
	want := "start_ip 10/1h, start_account 3/1h, start_phone 3/1h, verify_ip 50/1h, sms_global 1000/1h; " +
		"sms_share network 10%, country undivided; sms_spend off; " +
		"lockout after 5 wrong codes in 1h for 30m; ip_block after 20 in 1h for 1h; " +
		"prefix_breaker after 100 codes in 24h with at most 5% entered"
	if got != want {
		t.Errorf("limitsSummary:\n got %s\nwant %s", got, want)
	}
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 30 * time.Minute: "30m", 90 * time.Second: "1m30s", 10 * time.Second: "10s", 25 * time.Hour: "25h",
		time.Hour + time.Second: "1h0m1s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestHealthRedisOneRoundTripPerSecond floods the readiness route, which a
// load balancer may probe often and anyone may call: the storage is asked
// once, however many probes come at once or one after another, and once
// more when a second has passed. It failed before the probe's answer was
// cached, with a PING per probe.
func TestHealthRedisOneRoundTripPerSecond(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, map[string]string{}, func(h *Handler) { h.StorageRaw = redisTestStorage(t) })
	rs, ok := g.h.store.backend.(*redisstore.Store)
	if !ok {
		t.Fatalf("backend is %T, not Redis", g.h.store.backend)
	}
	if err := rs.Ping(context.Background()); err != nil { // a connection, set up
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Now())
	g.h.store.health.clock = clk
	trips := &storagetest.RedisTrips{}
	rs.Client().AddHook(trips)
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		codes := make(chan int, 100)
		for range cap(codes) {
			wg.Go(func() {
				r := httptest.NewRequest(http.MethodGet, "https://"+opsHost+"/recovery/healthz", nil)
				w := httptest.NewRecorder()
				if err := g.h.ServeHTTP(w, r, g.upstream); err != nil {
					t.Errorf("healthz: %v", err)
				}
				codes <- w.Code
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != http.StatusOK {
				t.Fatalf("healthz answered %d, want 200", c)
			}
		}
	}
	flood()
	if n := trips.All.Load(); n != 1 {
		t.Fatalf("100 probes at once: %d round trips to Redis, want 1", n)
	}
	for range 50 {
		wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")
	}
	if n := trips.All.Load(); n != 1 {
		t.Fatalf("50 more probes within the second: %d round trips to Redis, want 1", n)
	}
	clk.Advance(healthEvery - time.Millisecond)
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")
	if n := trips.All.Load(); n != 1 {
		t.Fatalf("a probe just short of a second later: %d round trips to Redis, want 1", n)
	}
	clk.Advance(time.Millisecond)
	flood()
	if n := trips.All.Load(); n != 2 {
		t.Fatalf("100 probes a second later: %d round trips to Redis, want 2", n)
	}
}

// pingFunc is a storage that answers a Ping as the function does.
type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// TestHealthCheckAtMostOncePerSecond drives the readiness check with a
// storage that counts its pings and answers only when told, on the manual
// clock: probes that come while a check is under way wait for it, probes
// within a second of its start get its answer, good or bad, and a probe
// that gives up waiting does not end the check for the others.
func TestHealthCheckAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC))
	var (
		pings   atomic.Int64
		mu      sync.Mutex
		answer  error         // what the next ping answers
		gate    chan struct{} // a ping waits until it is closed; nil: it answers at once
		started = make(chan struct{}, 1)
	)
	c := newHealthCheck(pingFunc(func(ctx context.Context) error {
		pings.Add(1)
		mu.Lock()
		g, a := gate, answer
		mu.Unlock()
		if g != nil {
			started <- struct{}{}
			select {
			case <-g:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return a
	}), clk)
	ctx := context.Background()
	wantPings := func(want int64, when string) {
		t.Helper()
		if n := pings.Load(); n != want {
			t.Fatalf("%s: %d pings, want %d", when, n, want)
		}
	}

	// A slow check: 50 probes come while it is under way, or just after.
	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	errs := make(chan error, 51)
	go func() { errs <- c.check(ctx) }()
	<-started
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { errs <- c.check(ctx) })
	}
	// A probe that gives up waiting answers at once, and the check goes on.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.check(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("a probe that gave up: %v, want context.Canceled", err)
	}
	mu.Lock()
	close(gate)
	gate = nil
	mu.Unlock()
	wg.Wait()
	for range 51 {
		if err := <-errs; err != nil {
			t.Fatalf("a probe of a storage that answers: %v", err)
		}
	}
	wantPings(1, "51 probes during one check")

	for range 100 {
		if err := c.check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantPings(1, "100 probes within the second")
	clk.Advance(healthEvery - time.Millisecond)
	if err := c.check(ctx); err != nil {
		t.Fatal(err)
	}
	wantPings(1, "a probe just short of a second after the check began")

	// A failing storage: its answer is kept for a second too.
	down := errors.New("storage down")
	mu.Lock()
	answer = down
	mu.Unlock()
	clk.Advance(time.Millisecond)
	for range 20 {
		if err := c.check(ctx); !errors.Is(err, down) {
			t.Fatalf("probe of a storage that is down: %v, want %v", err, down)
		}
	}
	wantPings(2, "20 probes a second later")
	mu.Lock()
	answer = nil
	mu.Unlock()
	clk.Advance(healthEvery)
	if err := c.check(ctx); err != nil {
		t.Fatalf("probe once the storage is back: %v", err)
	}
	wantPings(3, "a probe another second later")

	// A storage of this process is never asked.
	if err := newHealthCheck(struct{}{}, clk).check(ctx); err != nil {
		t.Errorf("check of a storage without Ping: %v", err)
	}
}
