package module

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
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
	addr := strings.TrimPrefix(strings.TrimSuffix(redisTestURL(), "/0"), "redis://")
	proxy := tcpproxy.Start(t, addr)
	g := newOpsGateway(t, map[string]string{}, func(h *Handler) {
		h.StorageRaw = guest(&storage.RedisModule{URL: "redis://" + proxy.Addr() + "/0", Prefix: "smsrec-health-test:", AllowVolatile: true}, "backend")
	})
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")

	proxy.Cut()
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
	wantHealth(t, g.probe(http.MethodGet), http.StatusOK, "ok")
}

// TestHealthUnreachableRedis: a Redis that never answered (nothing listens)
// loads the site, and its probe answers 503.
func TestHealthUnreachableRedis(t *testing.T) {
	t.Parallel()
	proxy := tcpproxy.Start(t, "127.0.0.1:1")
	proxy.Cut()
	g := newOpsGateway(t, map[string]string{}, func(h *Handler) {
		h.StorageRaw = guest(&storage.RedisModule{URL: "redis://" + proxy.Addr() + "/0"}, "backend")
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
		"lockout after 5 wrong codes in 1h for 30m; ip_block after 20 in 1h for 1h"
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
