package module

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/failover"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
)

// failoverSender is the JSON of an sms failover over senders.
func failoverSender(senders ...json.RawMessage) json.RawMessage {
	return guest(&failover.Failover{SendersRaw: senders}, "provider")
}

// TestFailoverTriesAndLogs: with the first sender down, every code goes
// out through the second, and each try is counted by provider and
// position, and each failed one logged, without the phone number.
func TestFailoverTriesAndLogs(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	phones := map[string]string{"ann@example.com": "+31612345801", "ben@example.com": "+31612345802"}
	box := filepath.Join(t.TempDir(), "fallback.jsonl")
	g := newOpsGateway(t, phones, func(h *Handler) {
		h.SenderRaw = failoverSender(
			messageBirdSender(&messagebird.MessageBird{AccessKey: "test_key", Originator: "OpsMail", Endpoint: down.URL}),
			outboxSender(box))
	})
	for account := range phones {
		g.start(account, "192.0.2.80")
	}
	g.close()

	families, err := g.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["site"] == g.h.SiteName && strings.HasPrefix(f.GetName(), "caddy_sms_recovery_sms_") {
				got[series(f.GetName(), labels)] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		`sms_tries_total{position="1",provider="messagebird",result="failed"}`: 2,
		`sms_tries_total{position="2",provider="outbox",result="sent"}`:        2,
		`sms_total{kind="code",result="sent"}`:                                 2,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("series = %v, want %v", got, want)
	}
	failed := loggedEvents(g.logs, "sms_try_failed")
	if len(failed) != 2 {
		t.Fatalf("%d failed tries logged, want 2", len(failed))
	}
	for _, f := range failed {
		if f["provider"] != "messagebird" || f["position"] != int64(1) || f["provider_status"] != int64(503) || f["reference"] == "" {
			t.Errorf("failed try logged as %v", f)
		}
		if line := fmt.Sprint(f); strings.Contains(line, "612345801") || strings.Contains(line, "612345802") {
			t.Errorf("a failed try's line names the phone: %s", line)
		}
	}
}

// TestFailoverQueueKey: the queue a failover delivers through is keyed by
// every one of its senders, so that a reload that changes one of them gets
// a queue of its own, and one that changes nothing keeps it.
func TestFailoverQueueKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	load := func(second string) string {
		g := newOpsGateway(t, map[string]string{}, func(h *Handler) {
			h.SenderRaw = failoverSender(outboxSender(filepath.Join(dir, "first.jsonl")), outboxSender(filepath.Join(dir, second)))
		})
		q := g.h.queueForTest()
		if q == nil {
			t.Fatal("no queue")
		}
		var key string
		queues.Range(func(k, v any) bool {
			if v.(*pooledQueue).queue == q {
				key = k.(string)
			}
			return key == ""
		})
		return key
	}
	a, b, a2 := load("second.jsonl"), load("other.jsonl"), load("second.jsonl")
	if a == "" || a == b || a != a2 {
		t.Errorf("queue keys %q, %q, %q: want one per set of senders", a, b, a2)
	}
}
