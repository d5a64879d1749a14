package module

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func TestPrefixBreakerValidate(t *testing.T) {
	t.Parallel()
	nine, sixty := 9, int64(60)
	for _, tc := range []struct {
		name string
		b    PrefixBreaker
		want string // "" for none
	}{
		{"defaults", PrefixBreaker{}, ""},
		{"too many digits", PrefixBreaker{Digits: &nine}, "prefix_breaker: digits: 9 is not 0 to 8"},
		{"entered share", PrefixBreaker{MaxEntered: &sixty}, "prefix_breaker: entered share must be 0% to 50%"},
		{"later block shorter", PrefixBreaker{LaterBlock: caddy.Duration(time.Minute)}, "later ones no shorter than the first"},
		{"window a bare number", PrefixBreaker{Window: 300}, "prefix_breaker: window: 300ns is below the least of 1s"},
		{"off checks nothing", PrefixBreaker{Off: true, Digits: &nine}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := validHandler()
			h.PrefixBreaker = &tc.b
			h.fillDefaults()
			err := h.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// breakerEnv is a gateway whose breaker holds a prefix's first block until
// support lifts it, after 10 codes none of which is entered, with pumped
// accounts under +447400 and others under +316120.
func breakerEnv(t *testing.T) (*pageEnv, map[string]string) {
	t.Helper()
	phones := map[string]string{}
	for i := range 15 {
		phones[fmt.Sprintf("pumped%d@example.com", i)] = fmt.Sprintf("+4474001%05d", i)
		phones[fmt.Sprintf("other%d@example.com", i)] = fmt.Sprintf("+316120%05d", i)
	}
	dirFile := filepath.Join(t.TempDir(), "phones.json")
	raw, _ := json.Marshal(phones)
	if err := os.WriteFile(dirFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	high := Limit{Events: 1000, Window: caddy.Duration(time.Hour)}
	one := int64(1)
	e := newPageEnv(t, func(h *Handler) {
		h.SiteName = fmt.Sprintf("Breaker Mail %d", opsSeq.Add(1))
		h.DirectoryRaw = fileDirectory(dirFile)
		h.Limits = map[string]Limit{"start_ip": high, "start_account": high, "start_phone": high, "verify_ip": high, "sms_global": high}
		h.PrefixBreaker = &PrefixBreaker{MinCodes: 10, Window: caddy.Duration(time.Hour), HeldAfter: &one}
	})
	return e, phones
}

// jsonStart posts /start for account and returns the answer, its flow ID
// in the body replaced by FLOW and the Date header dropped, so that two
// answers compare byte for byte.
func jsonStart(t *testing.T, e *pageEnv, account string) (status int, header http.Header, body string) {
	t.Helper()
	resp, err := http.Post(e.url("/start"), "application/json", strings.NewReader(fmt.Sprintf(`{"account":%q}`, account)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Flow string }
	if err := json.Unmarshal(b, &out); err != nil || out.Flow == "" {
		t.Fatalf("start %s: %d %s", account, resp.StatusCode, b)
	}
	header = resp.Header.Clone()
	header.Del("Date")
	return resp.StatusCode, header, strings.ReplaceAll(string(b), out.Flow, "FLOW")
}

// codePage walks a browser from the account page to the code page of
// account and returns it, its flow ID and CSRF token replaced.
func codePage(e *pageEnv, account string) string {
	e.t.Helper()
	p, flow := e.startFlow(e.browser(), account)
	return strings.NewReplacer(flow, "FLOW", p.field("csrf"), "CSRF").Replace(p.body)
}

// TestPrefixBreakerAtTheEdge pumps one prefix through the gateway: the
// tenth code, none entered, blocks it; the answers to /start, in JSON and
// as pages, are the same byte for byte for a blocked prefix as for any
// other, the code page showing the support text as always; the log, the
// Caddy event and the metrics name the prefix and its country and never a
// number; support lists the block and lifts it through the admin API.
func TestPrefixBreakerAtTheEdge(t *testing.T) {
	// Not parallel: the admin API lists the locks of every store in the
	// process, and other tests hold stores whose Redis is down on purpose,
	// which would make the listing answer 503.
	e, phones := breakerEnv(t)
	for i := range 9 {
		jsonStart(t, e, fmt.Sprintf("pumped%d@example.com", i))
	}
	e.waitMessages(9)
	st, hd, body := jsonStart(t, e, "pumped9@example.com") // the tenth: it trips
	for _, account := range []string{"pumped10@example.com", "other0@example.com"} {
		s, h, b := jsonStart(t, e, account)
		if s != st || !equalHeaders(h, hd) || b != body {
			t.Fatalf("start of %s answered %d %v %s; the tripping start %d %v %s", account, s, h, b, st, hd, body)
		}
	}
	blocked, open := codePage(e, "pumped11@example.com"), codePage(e, "other1@example.com")
	if blocked != open {
		t.Fatalf("the code page of a blocked prefix differs from another:\n%s\n---\n%s", blocked, open)
	}
	if !strings.Contains(html.UnescapeString(blocked), "Need help? Call +1 555 0100") {
		t.Fatalf("the code page does not show the support text:\n%s", blocked)
	}
	// The three codes under the block are dropped, the two others sent.
	refused := func() int {
		n := 0
		for _, f := range loggedEvents(e.logs, recovery.EventSMSRefused) {
			if f["scope"] == "prefix_breaker" && f["prefix"] == "+447400" && f["country"] == "GB" {
				n++
			}
		}
		return n
	}
	e.events.await(t, "three codes dropped under the block", func() bool { return refused() == 3 })
	ms := e.waitMessages(11)
	for _, m := range ms {
		for _, account := range []string{"pumped9@example.com", "pumped10@example.com", "pumped11@example.com"} {
			if m.To == phones[account] {
				t.Fatalf("a code went out under the block, to %s", account)
			}
		}
	}
	if len(ms) != 11 {
		t.Fatalf("%d messages in the outbox, want 9 pumped and 2 others", len(ms))
	}
	checkBlockReported(t, e, phones)

	// Support lists the block, never masked, and lifts it.
	status, _, raw := opsAdmin(t, http.MethodGet, admin.LocksPath)
	var locks []recovery.Lock
	if status != http.StatusOK || json.Unmarshal(raw, &locks) != nil {
		t.Fatalf("GET %s: %d %s", admin.LocksPath, status, raw)
	}
	l, ok := findLock(locks, recovery.KindPrefix, "+447400")
	if !ok || !l.Permanent || l.Country != "GB" || l.Reason != recovery.ReasonLowConversion || l.Strikes != 1 {
		t.Fatalf("listed %+v (%v), want the prefix held until support lifts it", l, ok)
	}
	if status, _, raw := opsAdmin(t, http.MethodDelete, admin.LocksPath+"/prefix/"+url.PathEscape("+447400")); status != http.StatusOK {
		t.Fatalf("lift: %d %s", status, raw)
	}
	if status, _, _ := opsAdmin(t, http.MethodDelete, admin.LocksPath+"/prefix/+447400"); status != http.StatusNotFound {
		t.Fatalf("a second lift answered %d, want 404", status)
	}
	lifts := loggedEvents(e.logs, admin.EventLockLifted)
	if len(lifts) != 1 || lifts[0]["prefix"] != "+447400" || lifts[0]["scope"] != "prefix_breaker" {
		t.Fatalf("lock_lifted log lines %v, want one naming the prefix", lifts)
	}
	jsonStart(t, e, "pumped12@example.com")
	if ms := e.waitMessages(12); !strings.HasPrefix(ms[11].To, "+447400") {
		t.Fatalf("after the lift, message %+v, want the pumped prefix's code", ms[11])
	}
}

// checkBlockReported checks the log line, the Caddy event and the metrics
// of the block: the prefix and its country, and no phone number anywhere
// in the logs.
func checkBlockReported(t *testing.T, e *pageEnv, phones map[string]string) {
	t.Helper()
	lines := loggedEvents(e.logs, recovery.EventPrefixBlocked)
	if len(lines) != 1 {
		t.Fatalf("%d prefix_blocked log lines, want 1", len(lines))
	}
	f := lines[0]
	if f["prefix"] != "+447400" || f["country"] != "GB" || f["scope"] != "prefix_breaker" || f["phone"] != nil || f["account_hash"] != nil ||
		f["reason"] != "too few of its codes were entered: blocked until support lifts it" {
		t.Fatalf("prefix_blocked log line %v", f)
	}
	for _, entry := range e.logs.All() {
		if entry.Level < zapcore.InfoLevel {
			continue
		}
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, phone := range phones {
			if strings.Contains(line, phone) {
				t.Fatalf("a log line holds the number %s: %s", phone, line)
			}
		}
	}
	evs := e.events.named("sms_recovery_prefix_blocked")
	if len(evs) != 1 || evs[0]["prefix"] != "+447400" || evs[0]["country"] != "GB" || evs[0]["phone"] != nil {
		t.Fatalf("sms_recovery_prefix_blocked events %v", evs)
	}
	want := map[string]float64{
		`caddy_sms_recovery_prefix_blocks_total{country="GB",prefix="+447400"}`:          1,
		`caddy_sms_recovery_events_total{event="prefix_blocked",scope="prefix_breaker"}`: 1,
		`caddy_sms_recovery_events_total{event="sms_refused",scope="prefix_breaker"}`:    3,
	}
	got := siteCounters(t, e)
	for s, v := range want {
		if got[s] != v {
			t.Errorf("%s = %v, want %v", s, got[s], v)
		}
	}
}

// siteCounters reads the counters of e's site, each named by its metric
// and its labels but site, sorted.
func siteCounters(t *testing.T, e *pageEnv) map[string]float64 {
	t.Helper()
	families, err := e.h.observer.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range families {
		if fam.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["site"] == e.h.SiteName {
				got["caddy_sms_recovery_"+series(fam.GetName(), labels)] = m.GetCounter().GetValue()
			}
		}
	}
	return got
}

// equalHeaders compares two answers' headers.
func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}
