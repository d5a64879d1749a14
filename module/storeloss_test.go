package module

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

// TestStoreStateLost locks an account on a Redis store and then takes the
// deployment's state away, as a restart without data or a flush would: the
// gateway logs the loss as an error, counts it and emits a Caddy event,
// and answers /start, /verify and /reset with 503, Retry-After and the
// support text, for the locked account and for any other, so that no one gets the
// fresh guesses the lost lock would have denied; until an operator
// acknowledges the loss through the admin API.
func TestStoreStateLost(t *testing.T) {
	t.Parallel()
	raw := redisTestStorage(t)
	g := newOpsGateway(t, map[string]string{
		"alice@example.com": "+31612345678", "bob@example.com": "+31612345679",
	}, func(h *Handler) {
		h.StorageRaw = raw
		h.Support = "Call +1 555 0100"
	})
	rs := g.h.store.backend.(*redisstore.Store)
	flow, _ := g.lock("alice@example.com", "192.0.2.10", 10, http.StatusLocked)
	bobFlow := g.start("bob@example.com", "192.0.2.11")

	// The state is gone: every key of the deployment, as after FLUSHALL.
	ctx := context.Background()
	var prefix struct {
		Prefix string `json:"prefix"`
	}
	if err := json.Unmarshal(raw, &prefix); err != nil {
		t.Fatal(err)
	}
	iter := rs.Client().Scan(ctx, 0, prefix.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rs.Client().Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}

	for _, req := range []struct {
		route string
		body  map[string]string
	}{
		{"/start", map[string]string{"account": "alice@example.com"}},
		{"/verify", map[string]string{"flow": flow, "code": "000000"}},
		{"/start", map[string]string{"account": "bob@example.com"}},
		{"/verify", map[string]string{"flow": bobFlow, "code": "000000"}},
		{"/start", map[string]string{"account": "alice@example.com"}},
		{"/reset", map[string]string{"reset_token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "password": "N3w-s3cret!"}},
	} {
		w := g.post(req.route, "192.0.2.12", req.body)
		var body refusal
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "300" ||
			body.Code != "unavailable" || body.Support != "Call +1 555 0100" {
			t.Fatalf("%s after the loss: %d Retry-After %q %s; want 503, Retry-After 300 and the support text",
				req.route, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	lost := g.logs.FilterField(zap.String("event", storage.AlarmStateLost)).All()
	if len(lost) != 1 || lost[0].Level != zapcore.ErrorLevel {
		t.Errorf("log lines of the loss: %v, want one error", lost)
	}
	if n := len(g.events.named("sms_recovery_" + storage.AlarmStateLost)); n != 1 {
		t.Errorf("%d Caddy events %s, want 1", n, storage.AlarmStateLost)
	}
	if n := metricValue(t, processMetrics().stateLost.WithLabelValues(g.h.SiteName)); n != 1 {
		t.Errorf("store_state_lost_total = %v, want 1", n)
	}
	if n := metricValue(t, processMetrics().lostNow); n < 1 {
		t.Errorf("store_state_lost = %v, want at least this store", n)
	}
	status, _, body := opsAdmin(t, http.MethodGet, admin.LossPath)
	if status != http.StatusOK || !strings.Contains(string(body), `"detail"`) {
		t.Errorf("GET %s: %d %s, want the loss listed", admin.LossPath, status, body)
	}

	// The operator acknowledges it: recovery works again, from the state
	// the server has now, and the acknowledgement is on record.
	status, _, body = opsAdmin(t, http.MethodDelete, admin.LossPath)
	if status != http.StatusOK || !strings.Contains(string(body), `"acknowledged":`) {
		t.Fatalf("DELETE %s: %d %s", admin.LossPath, status, body)
	}
	if _, lost := rs.StateLoss(); lost {
		t.Error("the store still reports the loss")
	}
	g.start("bob@example.com", "192.0.2.13")
	acked := g.logs.FilterField(zap.String("event", storage.AlarmLossAcknowledged)).All()
	if len(acked) != 1 || !strings.Contains(acked[0].ContextMap()["reason"].(string), opsAdminIP) {
		t.Errorf("log lines of the acknowledgement: %v, want one naming who", acked)
	}
}

// metricValue reads a counter's or a gauge's value.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}
