package module

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// TestMetrics runs flows through a gateway and reads the counters back
// from the registry of the config that provisioned it, as Caddy's metrics
// endpoint would. Counters are process-wide; the site label keeps this
// gateway's series apart from those of other tests.
func TestMetrics(t *testing.T) {
	t.Parallel()
	const (
		alice = "alice@example.com"
		bob   = "bob@example.com"
		carol = "carol@example.com"
		dora  = "dora@example.com"
		ip    = "192.0.2.40"
	)
	g := newOpsGateway(t, map[string]string{
		alice: "+31612345640", bob: "+31612345641", carol: "+31612345642", dora: "+4915123456789",
	}, func(h *Handler) {
		h.AllowedCountries = []string{"NL"}
		hour := caddy.Duration(time.Hour)
		h.Limits["start_account"] = Limit{Events: 2, Window: hour}
		h.Limits["sms_global"] = Limit{Events: 3, Window: hour}
		h.SMSShare = &SMSShare{Network: 100} // one client spends the whole budget
		h.Lockout = &Threshold{Failures: 2, Window: hour, Duration: hour}
	})

	g.start(dora, ip) // a German number: no SMS, and the reason stays out of the labels
	g.start(alice, ip)
	flow := g.start(alice, ip)
	if w := g.post("/start", ip, map[string]string{"account": alice}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("third start for one account: status %d, want 429", w.Code)
	}
	g.verify(flow, g.code(flow), ip, http.StatusOK)
	g.lock(bob, ip, 2, http.StatusLocked) // the third SMS spends the budget
	if w := g.post("/start", ip, map[string]string{"account": carol}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("start with the SMS budget spent: status %d, want 429", w.Code)
	}
	g.close() // delivers the queue, so every outcome is counted

	families, err := g.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "caddy_sms_recovery_") || processGauges[name] || directoryGauges[name] {
			continue
		}
		if f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %s, want a counter", name, f.GetType())
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["site"] != g.h.SiteName {
				continue // another test's gateway
			}
			if want := wantLabels[name]; !slices.Equal(slices.Sorted(maps.Keys(labels)), want) {
				t.Errorf("%s has labels %v, want %v", name, labels, want)
			}
			got[series(name, labels)] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		`events_total{event="flow_started",scope=""}`:              4,
		`events_total{event="sms_refused",scope=""}`:               1,
		`events_total{event="rate_limited",scope="start_account"}`: 1,
		`events_total{event="rate_limited",scope="sms_global"}`:    1,
		`events_total{event="code_verified",scope=""}`:             1,
		`events_total{event="wrong_code",scope=""}`:                2,
		`events_total{event="account_locked",scope="lockout"}`:     1,
		`sms_total{kind="code",result="sent"}`:                     3,
		// Dora's German number is refused when the queue comes to it.
		`sms_total{kind="code",result="refused"}`:           1,
		`phone_refused_total{reason="country_not_allowed"}`: 1,
		// Bob's owner is told of the lock, but the budget is spent: the
		// notice counts against it like a code.
		`events_total{event="lock_notice",scope=""}`:           1,
		`events_total{event="sms_refused",scope="sms_global"}`: 1,
		`sms_total{kind="lock_notice",result="refused"}`:       1,
		// The outbox, the gateway's one sender, took every SMS at its
		// first try; refused ones never reached it.
		`sms_tries_total{position="1",provider="outbox",result="sent"}`: 3,
		// Made at 0, so that a first block is an increase an alert sees.
		`events_total{event="prefix_blocked",scope="prefix_breaker"}`: 0,
		// Every event above but the prefix's (13), every SMS outcome (5)
		// and every refusal answered (the two 429s, bob's 400 and 423) are
		// in support's trails, written when the gateway stops.
		`trace_entries_total{result="written"}`: 13 + 5 + 4,
		`trace_entries_total{result="dropped"}`: 0,
		`trace_entries_total{result="failed"}`:  0,
	}
	for s, v := range want {
		if got[s] != v {
			t.Errorf("caddy_sms_recovery_%s = %v, want %v", s, got[s], v)
		}
	}
	for s, v := range got {
		// phone_refused_total has a series of 0 for every reason.
		if _, ok := want[s]; !ok && (v != 0 || !strings.HasPrefix(s, "phone_refused_total{")) {
			t.Errorf("unexpected series caddy_sms_recovery_%s = %v", s, v)
		}
	}
}

// wantLabels are the label names of each metric, sorted.
var wantLabels = map[string][]string{
	"caddy_sms_recovery_events_total":        {"event", "scope", "site"},
	"caddy_sms_recovery_sms_total":           {"kind", "result", "site"},
	"caddy_sms_recovery_sms_tries_total":     {"position", "provider", "result", "site"},
	"caddy_sms_recovery_responses_total":     {"code", "route", "site"},
	"caddy_sms_recovery_unavailable_total":   {"site"},
	"caddy_sms_recovery_phone_refused_total": {"reason", "site"},
	"caddy_sms_recovery_prefix_blocks_total": {"country", "prefix", "site"},
	"caddy_sms_recovery_trace_entries_total": {"result", "site"},

	"caddy_sms_recovery_sms_delivery_reports_total":         {"country", "provider", "site", "status"},
	"caddy_sms_recovery_sms_delivery_reports_refused_total": {"provider", "reason", "site"},
	"caddy_sms_recovery_store_state_lost_total":             {"site"},
	"caddy_sms_recovery_store_unsafe_server_total":          {"site"},
	"caddy_sms_recovery_mail_total":                         {"kind", "result", "site"},
	"caddy_sms_recovery_mail_tries_failed_total":            {"kind", "site"},
	"caddy_sms_recovery_reset_disputed_total":               {"site"},
}

// processGauges are the gauges of the whole process, with no site label.
var processGauges = map[string]bool{
	queueLengthMetric:               true,
	circuitOpenMetric:               true,
	"caddy_sms_recovery_build_info": true,
	// The memory stores' tables, summed over the stores of the process.
	"caddy_sms_recovery_store_entries":       true,
	"caddy_sms_recovery_store_capacity":      true,
	"caddy_sms_recovery_store_refused_total": true,
	"caddy_sms_recovery_store_let_go_total":  true,
	storeLostMetric:                          true,
}

// directoryGauges are the gauges of a site's directory (TestDirectoryReport).
var directoryGauges = map[string]bool{directoryUsed: true, directoryUnfit: true}

// series names a series by its metric, without the common prefix, and its
// labels other than site, sorted.
func series(name string, labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k != "site" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
		}
	}
	return strings.TrimPrefix(name, "caddy_sms_recovery_") + "{" + strings.Join(parts, ",") + "}"
}

const (
	queueLengthMetric = "caddy_sms_recovery_sms_queue_length"
	circuitOpenMetric = "caddy_sms_recovery_sms_circuit_open"
	storeLostMetric   = "caddy_sms_recovery_store_state_lost"
)

// TestSMSQueueLengthMetric holds a provider's answers back so that messages
// wait in the queue, and reads the gauge of waiting messages.
func TestSMSQueueLengthMetric(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"errors":[{"code":9,"description":"no (correct) recipients found","parameter":"recipient"}]}`)
	}))
	t.Cleanup(provider.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before provider.Close, even if the test fails early
	// The queue has sms.DefaultWorkers workers, each held by the provider
	// with one message: the 12 beyond them wait, and at least 6 are seen.
	const waiting = 6
	sent := sms.DefaultWorkers + 12
	phones := map[string]string{}
	for i := range sent {
		phones[fmt.Sprintf("queued%d@example.com", i)] = fmt.Sprintf("+3161%07d", 2000+i)
	}
	g := newOpsGateway(t, phones, func(h *Handler) {
		h.SenderRaw = messageBirdSender(&messagebird.MessageBird{AccessKey: "test_key", Originator: "OpsMail", Endpoint: provider.URL})
		// Hundreds of codes to one prefix, none entered: what the breaker
		// stops, and this test needs them all sent.
		h.PrefixBreaker = &PrefixBreaker{Off: true}
		// And from one network, which its share of sms_global stops.
		h.SMSShare = &SMSShare{Network: 100}
	})
	for account := range phones {
		g.start(account, "192.0.2.50")
	}

	// Every start has queued its message by the time it returns, and no
	// worker lets go of a message before the release: each holds one at
	// most, so the messages beyond the workers are waiting now. Other
	// tests' queues can only add to the process-wide count.
	if n := queueLength(t, g.ctx.GetMetricsRegistry()); n < waiting {
		t.Errorf("%s = %v, want at least %d", queueLengthMetric, n, waiting)
	}
	unblock()
	g.close()
	if n := len(loggedEvents(g.logs, "sms_rejected")); n != sent {
		t.Errorf("%d messages rejected after the release, want %d", n, sent)
	}
}

// queueLength reads the gauge of waiting SMS from reg.
func queueLength(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != queueLengthMetric {
			continue
		}
		if f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) != 1 || len(f.GetMetric()[0].GetLabel()) != 0 {
			t.Fatalf("%s is not one unlabelled gauge: %v", queueLengthMetric, f)
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	t.Fatalf("%s is not registered", queueLengthMetric)
	return 0
}

// TestBuildInfoMetric: the release is a label of a gauge that is always 1.
func TestBuildInfoMetric(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, map[string]string{}, nil)
	families, err := g.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_sms_recovery_build_info" {
			continue
		}
		ms := f.GetMetric()
		if f.GetType() != dto.MetricType_GAUGE || len(ms) != 1 || len(ms[0].GetLabel()) != 1 ||
			ms[0].GetLabel()[0].GetName() != "version" || ms[0].GetLabel()[0].GetValue() != version.Version ||
			ms[0].GetGauge().GetValue() != 1 {
			t.Fatalf("build_info is not one gauge of 1 labelled version=%q: %v", version.Version, f)
		}
		return
	}
	t.Fatal("caddy_sms_recovery_build_info is not registered")
}

// TestSMSCircuitOpenMetric makes the provider fail until the breaker of its
// queue opens, and reads the gauge of open breakers.
func TestSMSCircuitOpenMetric(t *testing.T) {
	t.Parallel()
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(provider.Close)
	phones := map[string]string{}
	for i := range 5 { // the default threshold: 5 failed tries in a row
		phones[fmt.Sprintf("breaker%d@example.com", i)] = fmt.Sprintf("+316123457%02d", i)
	}
	g := newOpsGateway(t, phones, func(h *Handler) {
		h.SenderRaw = messageBirdSender(&messagebird.MessageBird{AccessKey: "test_key", Originator: "OpsMail", Endpoint: provider.URL})
		// Codes that expire soon, so that the retries end and the queue
		// drains at cleanup: the shortest code_ttl, from a clock 58 s
		// behind the queue's.
		h.CodeTTL = caddy.Duration(leastCodeTTL)
		h.clock = clock.NewManual(time.Now().Add(2*time.Second - leastCodeTTL))
	})
	reg := g.ctx.GetMetricsRegistry()
	for account := range phones {
		g.start(account, "192.0.2.70")
	}
	q := g.h.queueForTest()
	if q == nil {
		t.Fatal("no SMS queue hears from the handler")
	}
	// The try that opens the breaker is the last try of some message, whose
	// outcome event is emitted after it: asking at each event cannot miss it.
	g.events.await(t, "open breaker while the provider failed", q.CircuitOpen)
	// Other tests' queues can only add to the process-wide count.
	if n := gauge(t, reg, circuitOpenMetric); n < 1 {
		t.Errorf("%s = %v with this queue's breaker open, want at least 1", circuitOpenMetric, n)
	}
}

// queueForTest finds the pooled SMS queue the handler sends through: the
// one its observer hears from.
func (h *Handler) queueForTest() *sms.Queue {
	var q *sms.Queue
	queues.Range(func(_, v any) bool {
		p := v.(*pooledQueue)
		p.mu.Lock()
		defer p.mu.Unlock()
		if slices.Contains(p.observers, h.observer) {
			q = p.queue
			return false
		}
		return true
	})
	return q
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && f.GetType() == dto.MetricType_GAUGE && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s is not one gauge in the registry", name)
	return 0
}
