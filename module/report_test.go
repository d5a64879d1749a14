package module

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// birdTestSecret is a made-up Bird webhook signing secret.
var birdTestSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))

func newReportGateway(t *testing.T) *opsGateway {
	t.Helper()
	return newOpsGateway(t, map[string]string{"alice@example.com": "+31612345678"}, func(h *Handler) {
		h.DeliveryReports = &DeliveryReports{BirdSecrets: []string{birdTestSecret}}
	})
}

// report sends a delivery report to the gateway and returns the answer.
func (g *opsGateway) report(method, target string, header http.Header, body string) *httptest.ResponseRecorder {
	g.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	if err := g.h.ServeHTTP(w, r, g.upstream); err != nil {
		g.t.Fatalf("%s %s: %v", method, target, err)
	}
	return w
}

func (g *opsGateway) reportCount(provider, country, status string) float64 {
	g.t.Helper()
	return metricValue(g.t, g.h.observer.metrics.reports.WithLabelValues(g.h.SiteName, provider, country, status))
}

func (g *opsGateway) refusedCount(provider, reason string) float64 {
	g.t.Helper()
	return metricValue(g.t, g.h.observer.metrics.refused.WithLabelValues(g.h.SiteName, provider, reason))
}

// kannelCall is the URL smsbox fetches for a report of DLR type dlr.
func kannelCall(raw, dlr string) string { return strings.Replace(raw, "%d", dlr, 1) }

func TestKannelReports(t *testing.T) {
	t.Parallel()
	g := newReportGateway(t)
	raw := g.h.reports.KannelURL(recovery.Message{To: "+31612345678", Reference: "f-abc"})
	if !strings.HasPrefix(raw, "https://"+opsHost+"/recovery/sms-report/kannel?") {
		t.Fatalf("report URL %q is not below public_url and the path prefix", raw)
	}
	for dlr, status := range map[string]string{"8": "accepted", "1": "delivered", "2": "failed"} {
		if w := g.report(http.MethodGet, kannelCall(raw, dlr), nil, ""); w.Code != http.StatusNoContent {
			t.Fatalf("DLR %s: %d %s", dlr, w.Code, w.Body)
		}
		if n := g.reportCount("kannel", "NL", status); n != 1 {
			t.Errorf("%s reports for NL = %v, want 1", status, n)
		}
	}
	evs := g.events.named(EventDeliveryReport)
	if len(evs) != 3 {
		t.Fatalf("%d %s events, want one for each of the 3 reports", len(evs), EventDeliveryReport)
	}
	for _, ev := range evs {
		if ev["site"] != g.h.SiteName || ev["provider"] != "kannel" || ev["country"] != "NL" || ev["reference"] != "f-abc" || ev["status"] == "" {
			t.Errorf("event data %v", ev)
		}
	}

	forged := map[string]string{
		"no tag":          strings.Replace(kannelCall(raw, "1"), "t=", "x=", 1),
		"another country": strings.Replace(kannelCall(raw, "1"), "c=NL", "c=US", 1),
		"made up":         "https://" + opsHost + "/recovery/sms-report/kannel?c=NL&r=f-abc&t=AAAAAAAAAAAAAAAAAAAAAA&status=1",
	}
	for name, target := range forged {
		w := g.report(http.MethodGet, target, nil, "")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"forged_report"`) {
			t.Errorf("%s: %d %s, want 403 forged_report", name, w.Code, w.Body)
		}
	}
	if n := g.refusedCount("kannel", "forged"); n != float64(len(forged)) {
		t.Errorf("forged Kannel reports counted %v, want %d", n, len(forged))
	}
	if n := g.reportCount("kannel", "NL", "delivered") + g.reportCount("kannel", "US", "delivered"); n != 1 {
		t.Errorf("delivered reports = %v after the forged ones, want still 1", n)
	}
	if lines := g.logs.FilterField(zap.String("event", "sms_report_forged")).Len(); lines != len(forged) {
		t.Errorf("%d forged reports logged, want %d", lines, len(forged))
	}

	if w := g.report(http.MethodGet, kannelCall(raw, "3"), nil, ""); w.Code != http.StatusBadRequest {
		t.Errorf("an unknown DLR type: %d %s, want 400", w.Code, w.Body)
	}
	if n := g.refusedCount("kannel", "malformed"); n != 1 {
		t.Errorf("malformed Kannel reports counted %v, want 1", n)
	}
	if w := g.report(http.MethodDelete, kannelCall(raw, "1"), nil, ""); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("DELETE: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := g.report(http.MethodGet, "https://"+opsHost+"/recovery/sms-report/smpp?status=1", nil, ""); w.Code != http.StatusNotFound {
		t.Errorf("a provider whose reports are not read: %d, want 404", w.Code)
	}
}

// birdWebhook signs body as Bird signs a webhook delivery (Standard
// Webhooks) with secret.
func birdWebhook(t *testing.T, secret, body string, at time.Time) http.Header {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	id, ts := "msg_31aXk2", strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	return http.Header{
		"Content-Type":      {"application/json"},
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {ts},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))},
	}
}

func birdEvent(typ, to string) string {
	return `{"type":"` + typ + `","timestamp":"2026-12-07T10:00:00Z","data":{"sms_id":"0c9f7e7a-3b1d-4d61-9d1e-3f1b2a4c5d6e",` +
		`"to":"` + to + `","from":"ExampleMail","mcc_mnc":"26201","carrier":null,"metadata":null,"tags":null,` +
		`"workspace_id":"5b0d1f3e-2a4c-4e6f-8a0b-1c2d3e4f5a6b"}}`
}

func TestBirdReports(t *testing.T) {
	t.Parallel()
	g := newReportGateway(t)
	target := "https://" + opsHost + "/recovery/sms-report/bird"
	for _, ev := range []struct{ typ, to string }{
		{"sms.delivered", "+4915123456789"}, {"sms.failed", "+4915123456789"}, {"sms.delivered", "+31612345678"},
		{"sms.tfn_verification.approved", "+31612345678"}, // not about delivery: taken, not counted
	} {
		body := birdEvent(ev.typ, ev.to)
		if w := g.report(http.MethodPost, target, birdWebhook(t, birdTestSecret, body, time.Now()), body); w.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", ev.typ, w.Code, w.Body)
		}
	}
	for _, c := range []struct {
		country, status string
		want            float64
	}{{"DE", "delivered", 1}, {"DE", "failed", 1}, {"NL", "delivered", 1}, {"NL", "accepted", 0}} {
		if n := g.reportCount("bird", c.country, c.status); n != c.want {
			t.Errorf("bird %s %s = %v, want %v", c.country, c.status, n, c.want)
		}
	}

	body := birdEvent("sms.delivered", "+31612345678")
	other := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x43}, 32))
	forged := map[string]http.Header{
		"unsigned":       {"Content-Type": {"application/json"}},
		"another secret": birdWebhook(t, other, body, time.Now()),
		"replayed late":  birdWebhook(t, birdTestSecret, body, time.Now().Add(-10*time.Minute)),
	}
	for name, h := range forged {
		if w := g.report(http.MethodPost, target, h, body); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, w.Code, w.Body)
		}
	}
	if n := g.refusedCount("bird", "forged"); n != float64(len(forged)) {
		t.Errorf("forged Bird reports counted %v, want %d", n, len(forged))
	}
	if n := g.reportCount("bird", "NL", "delivered"); n != 1 {
		t.Errorf("NL delivered = %v after the forged ones, want still 1", n)
	}
	if w := g.report(http.MethodGet, target, nil, ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", w.Code)
	}
}

func TestBirdReportsWithoutSecret(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, map[string]string{}, nil)
	body := birdEvent("sms.delivered", "+31612345678")
	w := g.report(http.MethodPost, "https://"+opsHost+"/recovery/sms-report/bird", birdWebhook(t, birdTestSecret, body, time.Now()), body)
	if w.Code != http.StatusForbidden {
		t.Errorf("a Bird report to a gateway that knows no Bird secret: %d, want 403", w.Code)
	}
}

func TestReportURLsFollowSecretAndPrefix(t *testing.T) {
	t.Parallel()
	a := newOpsGateway(t, map[string]string{}, func(h *Handler) { h.PathPrefix = "/" })
	raw := a.h.reports.KannelURL(recovery.Message{To: "+31612345678", Reference: "f-1"})
	if !strings.HasPrefix(raw, "https://"+opsHost+"/sms-report/kannel?") {
		t.Fatalf("report URL with path_prefix /: %q", raw)
	}
	// Another secret: the URL is not this gateway's.
	b := newOpsGateway(t, map[string]string{}, func(h *Handler) {
		h.Secrets = []string{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))}
		h.PathPrefix = "/"
	})
	if w := b.report(http.MethodGet, kannelCall(raw, "1"), nil, ""); w.Code != http.StatusForbidden {
		t.Errorf("a report URL signed by another gateway: %d, want 403", w.Code)
	}
	u, _ := url.Parse(raw)
	if u.Query().Get("c") != "NL" || u.Query().Get("r") != "f-1" || strings.Contains(raw, "612345678") {
		t.Errorf("report URL %q", raw)
	}
}
