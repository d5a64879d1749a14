package module

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	httpdirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/http"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
)

// The accounts of the mixed directory below, and their numbers: what a
// directory migrated from a legacy database holds.
const (
	mixedGood      = "alice@example.com" // a Dutch mobile in E.164
	mixedNational  = "bob@example.com"   // the same kind of number, written nationally
	mixedLandline  = "carol@example.com" // an Amsterdam fixed line
	mixedPremium   = "dave@example.com"  // a 0900 premium-rate number
	mixedForeign   = "erin@example.com"  // a German mobile; only NL is allowed
	mixedGoodToo   = "frank@example.com"
	mixedNoPhone   = "gina@example.com"
	directoryUsed  = "caddy_sms_recovery_directory_usable_phones"
	directoryUnfit = "caddy_sms_recovery_directory_unusable_phones"
	phoneRefused   = "caddy_sms_recovery_phone_refused_total"
)

var mixedPhones = map[string]string{
	mixedGood:     "+31612345678",
	mixedNational: "0612345670",
	mixedLandline: "+31201234567",
	mixedPremium:  "+31900123456",
	mixedForeign:  "+4915123456789",
	mixedGoodToo:  "+31612345679",
	mixedNoPhone:  "",
}

// TestDirectoryReport loads a directory of mixed numbers and reads what
// the gateway tells of it: one load line with the counts, the reasons and
// the first refused accounts (hashed, never a number), the gauges of
// unusable numbers by reason, and one line when a rewritten file is taken.
func TestDirectoryReport(t *testing.T) {
	t.Parallel()
	// The queue drops codes whose time is up by the wall clock.
	clk := clock.NewManual(time.Now())
	g := newOpsGateway(t, mixedPhones, func(h *Handler) {
		h.AllowedCountries = []string{"NL"}
		h.clock = clk
	})
	ref := g.h.observer.keys.AccountRef

	loaded := onlyLine(t, g.logs, "phone directory loaded")
	if loaded.Level != zapcore.WarnLevel {
		t.Errorf("load line at %s, want warn: some numbers are refused", loaded.Level)
	}
	wantFields(t, loaded, map[string]any{
		"site": g.h.SiteName, "accounts": int64(7), "usable": int64(2), "refused": int64(4),
		"refused_by_reason": map[string]any{
			"national_format": int64(1), "not_mobile": int64(1), "premium_rate": int64(1), "country_not_allowed": int64(1),
		},
		"first_refused_hashes": []any{ref(mixedNational), ref(mixedLandline), ref(mixedPremium), ref(mixedForeign)},
	})
	holdsNoPhone(t, g.logs, mixedPhones)
	wantGauges(t, g, map[string]float64{
		directoryUsed: 2,
		directoryUnfit + `{reason="national_format"}`: 1, directoryUnfit + `{reason="not_mobile"}`: 1,
		directoryUnfit + `{reason="premium_rate"}`: 1, directoryUnfit + `{reason="country_not_allowed"}`: 1,
		directoryUnfit + `{reason="invalid"}`: 0, directoryUnfit + `{reason="voip"}`: 0,
		directoryUnfit + `{reason="shared_cost"}`: 0, directoryUnfit + `{reason="toll_free"}`: 0,
	})

	// The migration is fixed but for the landline: the file is rewritten,
	// and the next look at it, a second later, takes it.
	rewritten := map[string]string{mixedGood: "+31612345678", mixedNational: "+31612345670", mixedLandline: "+31201234567"}
	rewritePhones(t, g, rewritten, 2)
	g.start(mixedGood, "192.0.2.60")
	if n := len(g.logs.FilterMessage("phone directory reloaded").All()); n != 0 {
		t.Fatalf("%d reload lines before the next look at the file", n)
	}
	clk.Advance(time.Second)
	g.start(mixedGood, "192.0.2.60")
	reloaded := onlyLine(t, g.logs, "phone directory reloaded")
	if reloaded.Level != zapcore.WarnLevel {
		t.Errorf("reload line at %s, want warn", reloaded.Level)
	}
	wantFields(t, reloaded, map[string]any{
		"accounts": int64(3), "usable": int64(2), "refused": int64(1),
		"refused_by_reason":    map[string]any{"not_mobile": int64(1)},
		"first_refused_hashes": []any{ref(mixedLandline)},
	})
	holdsNoPhone(t, g.logs, rewritten)
	wantGauges(t, g, map[string]float64{
		directoryUsed: 2,
		directoryUnfit + `{reason="national_format"}`: 0, directoryUnfit + `{reason="not_mobile"}`: 1,
		directoryUnfit + `{reason="premium_rate"}`: 0, directoryUnfit + `{reason="country_not_allowed"}`: 0,
		directoryUnfit + `{reason="invalid"}`: 0, directoryUnfit + `{reason="voip"}`: 0,
		directoryUnfit + `{reason="shared_cost"}`: 0, directoryUnfit + `{reason="toll_free"}`: 0,
	})

	// A version in which no number may get a code is a mistake, not a
	// directory: the last good copy stays, and nothing says it was taken.
	rewritePhones(t, g, map[string]string{mixedGood: "0612345678", mixedLandline: "+31201234567"}, 3)
	clk.Advance(time.Second)
	g.start(mixedNational, "192.0.2.60")
	if n := len(g.logs.FilterMessage("phone directory reloaded").All()); n != 1 {
		t.Errorf("%d reload lines after a version without a usable number, want still 1", n)
	}
	if s := gauges(t, g)[directoryUsed]; s != 2 {
		t.Errorf("%s = %v after a refused version, want the last good copy's 2", directoryUsed, s)
	}
	g.start(mixedLandline, "192.0.2.60") // still a landline: no code

	// A clean version is told too, at info.
	rewritePhones(t, g, map[string]string{mixedGood: "+31612345678"}, 4)
	clk.Advance(time.Second)
	g.start(mixedGood, "192.0.2.60")
	if lines := g.logs.FilterMessage("phone directory reloaded").All(); len(lines) != 2 {
		t.Errorf("%d reload lines after a clean version, want 2", len(lines))
	} else {
		clean := lines[1]
		if clean.Level != zapcore.InfoLevel {
			t.Errorf("clean reload line at %s, want info", clean.Level)
		}
		wantFields(t, clean, map[string]any{"accounts": int64(1), "usable": int64(1), "refused": int64(0)})
		if _, ok := clean.ContextMap()["first_refused_hashes"]; ok {
			t.Errorf("clean reload line names refused accounts: %v", clean.ContextMap())
		}
	}
	g.close() // delivers the queue: every refusal is counted
	if got := sentTo(g); !slices.Equal(got, []string{"+31612345670", "+31612345678", "+31612345678", "+31612345678"}) {
		t.Errorf("codes went to %v, want alice's three times and bob's fixed number", got)
	}
	wantCounters(t, g, phoneRefused, map[string]float64{"not_mobile": 1})
}

// TestDirectoryReportClearAccounts: with log_accounts clear, the load line
// names the first accounts of refused numbers whole, beside their hashes.
func TestDirectoryReportClearAccounts(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, mixedPhones, func(h *Handler) {
		h.AllowedCountries = []string{"NL"}
		h.LogAccounts = logAccountsClear
	})
	ref := g.h.observer.keys.AccountRef
	wantFields(t, onlyLine(t, g.logs, "phone directory loaded"), map[string]any{
		"first_refused":        []any{mixedNational, mixedLandline, mixedPremium, mixedForeign},
		"first_refused_hashes": []any{ref(mixedNational), ref(mixedLandline), ref(mixedPremium), ref(mixedForeign)},
	})
}

// TestPhoneRefusedCounted: a directory asked at each request (here a web
// service) cannot be checked ahead; a number it gives that may not get a
// code is counted by reason when the code is dropped.
func TestPhoneRefusedCounted(t *testing.T) {
	t.Parallel()
	phones := map[string]string{
		"nat@example.com": "0612345678", "fixed@example.com": "+31201234567",
		"fixed2@example.com": "+31201234568", "ok@example.com": "+31612345678",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		phone, ok := phones[r.URL.Query().Get("account")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"phone": phone})
	}))
	t.Cleanup(srv.Close)
	g := newOpsGateway(t, nil, func(h *Handler) {
		h.DirectoryRaw = guest(&httpdirectory.HTTP{URL: srv.URL + "/phones"}, "source")
	})
	for account := range phones {
		g.start(account, "192.0.2.61")
	}
	g.start("nobody@example.com", "192.0.2.61") // a stand-in number, never counted
	if n := len(g.logs.FilterMessage("phone directory loaded").All()); n != 0 {
		t.Errorf("a directory asked per request logged %d load lines", n)
	}
	g.close()
	wantCounters(t, g, phoneRefused, map[string]float64{"national_format": 1, "not_mobile": 2})
	if got := gauges(t, g); len(got) != 0 {
		t.Errorf("a directory asked per request has directory gauges %v", got)
	}
}

// TestDirectoryWithoutUsableNumbersRefused: a file none of whose numbers
// may get a code does not load; the error names the file, the reasons and
// the first accounts as the logs name them, and holds no number.
func TestDirectoryWithoutUsableNumbersRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "phones.json")
	phones := map[string]string{mixedNational: "0612345670", mixedLandline: "+31201234567", mixedNoPhone: ""}
	writePhones(t, path, phones, 1)
	for _, logAccounts := range []string{logAccountsHashed, logAccountsClear} {
		t.Run(logAccounts, func(t *testing.T) {
			t.Parallel()
			h := &Handler{
				SiteName: "Refused Mail", PublicURL: "https://" + opsHost, DirectoryRaw: fileDirectory(path),
				SenderRaw: outboxSender(filepath.Join(t.TempDir(), "outbox.jsonl")), Secrets: []string{opsSecret},
				StorageRaw: ownMemoryStorage(), Forward: &Forward{KeyID: "gw1", HMACKey: opsHMACKey},
				LogAccounts: logAccounts,
			}
			err := provisionHandler(t, h)
			if err == nil {
				t.Fatal("a directory without a usable number loaded")
			}
			msg := err.Error()
			accounts := "first account hashes " + h.observer.keys.AccountRef(mixedNational) + ", " + h.observer.keys.AccountRef(mixedLandline)
			if logAccounts == logAccountsClear {
				accounts = "first accounts " + mixedNational + ", " + mixedLandline
			}
			for _, want := range []string{path, "none of its 2 phone numbers may get a code", "national_format 1", "not_mobile 1", accounts, "international"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if logAccounts == logAccountsHashed && strings.Contains(msg, "@example.com") {
				t.Errorf("error %q names an account with log_accounts hashed", msg)
			}
			for _, phone := range phones {
				if phone != "" && strings.Contains(msg, phone[len(phone)-8:]) {
					t.Errorf("error %q holds a number of the directory", msg)
				}
			}
		})
	}
}

// provisionHandler provisions h as Caddy would, and cleans it up.
func provisionHandler(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if cerr := h.Cleanup(); cerr != nil {
		t.Errorf("Cleanup: %v", cerr)
	}
	return err
}

// onlyLine returns the one captured line of msg.
func onlyLine(t *testing.T, logs *zapobs.ObservedLogs, msg string) zapobs.LoggedEntry {
	t.Helper()
	lines := logs.FilterMessage(msg).All()
	if len(lines) != 1 {
		t.Fatalf("%d lines %q, want 1", len(lines), msg)
	}
	return lines[0]
}

// wantFields compares some fields of a line, as they would be written in
// JSON.
func wantFields(t *testing.T, line zapobs.LoggedEntry, want map[string]any) {
	t.Helper()
	raw, err := json.Marshal(line.ContextMap())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if g, w := fmt.Sprint(got[k]), fmt.Sprint(v); g != w {
			t.Errorf("%q: %s = %s, want %s", line.Message, k, g, w)
		}
	}
}

// holdsNoPhone fails if a captured line holds the digits of a number.
func holdsNoPhone(t *testing.T, logs *zapobs.ObservedLogs, phones map[string]string) {
	t.Helper()
	for _, line := range serialize(t, logs) {
		for _, phone := range phones {
			if len(phone) > 6 && strings.Contains(line, phone[len(phone)-7:]) {
				t.Errorf("log line holds a phone number: %s", line)
			}
		}
		if strings.Contains(line, "@example.com") {
			t.Errorf("log line names an account with log_accounts hashed: %s", line)
		}
	}
}

// rewritePhones replaces the gateway's directory file by a new version.
func rewritePhones(t *testing.T, g *opsGateway, phones map[string]string, version int) {
	t.Helper()
	writePhones(t, filepath.Join(filepath.Dir(g.outbox), "phones.json"), phones, version)
}

// writePhones writes a directory file with a modification time of its own,
// so that no test depends on the file system's timestamp resolution.
func writePhones(t *testing.T, path string, phones map[string]string, version int) {
	t.Helper()
	data, err := json.Marshal(phones)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 6, 1, 0, 0, version, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// sentTo returns the numbers the outbox holds codes for, sorted.
func sentTo(g *opsGateway) []string {
	var to []string
	for _, m := range g.sent() {
		to = append(to, m.To)
	}
	slices.Sort(to)
	return to
}

// gauges returns the directory gauges of g's site, by series.
func gauges(t *testing.T, g *opsGateway) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for name, byLabels := range siteSeries(t, g) {
		if name == directoryUsed || name == directoryUnfit {
			for l, v := range byLabels {
				got[name+l] = v
			}
		}
	}
	return got
}

func wantGauges(t *testing.T, g *opsGateway, want map[string]float64) {
	t.Helper()
	if got := gauges(t, g); !maps.Equal(got, want) {
		t.Errorf("directory gauges = %v, want %v", got, want)
	}
}

// wantCounters compares the series of a counter by reason with want, in
// which every reason not named is 0: each has a series from the start.
func wantCounters(t *testing.T, g *opsGateway, name string, byReason map[string]float64) {
	t.Helper()
	want := map[string]float64{}
	for _, r := range directory.PhoneReasons() {
		want[fmt.Sprintf("{reason=%q}", r)] = byReason[r]
	}
	if got := siteSeries(t, g)[name]; !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// siteSeries gathers the registry of g's config and returns the values of
// g's site, by metric and then by the labels other than site ("" for none).
func siteSeries(t *testing.T, g *opsGateway) map[string]map[string]float64 {
	t.Helper()
	families, err := g.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["site"] != g.h.SiteName {
				continue
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			s := strings.TrimPrefix(series(f.GetName(), labels), strings.TrimPrefix(f.GetName(), "caddy_sms_recovery_"))
			if s == "{}" {
				s = ""
			}
			if out[f.GetName()] == nil {
				out[f.GetName()] = map[string]float64{}
			}
			out[f.GetName()][s] = v
		}
	}
	return out
}
