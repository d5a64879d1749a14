package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGateway answers /start and /verify like the gateway, writing the SMS
// of alice@example.com to an outbox file, giving nobody@example.com a decoy
// flow without an SMS and limited@example.com a 429. It counts what it
// answered, so that the report can be checked against it.
type fakeGateway struct {
	outbox string
	delay  time.Duration

	mu      sync.Mutex
	flows   map[string]string // flow → code; "" for a decoy
	used    map[string]bool
	answers map[string]int // "route status" → count
	headers []http.Header
}

func newFakeGateway(t *testing.T, delay time.Duration) (*fakeGateway, *httptest.Server) {
	t.Helper()
	g := &fakeGateway{
		outbox:  filepath.Join(t.TempDir(), "sms-outbox.jsonl"),
		delay:   delay,
		flows:   map[string]string{},
		used:    map[string]bool{},
		answers: map[string]int{},
	}
	// An earlier run's line, which must not be taken for a flow of this run.
	if err := os.WriteFile(g.outbox, []byte(`{"to":"+31612345678","body":"code 999999 ?flow=old\n\n@localhost #999999","time":"x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(g.delay)
	var req map[string]string
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.headers = append(g.headers, r.Header.Clone())
	route := strings.TrimPrefix(r.URL.Path, "/recovery")
	status := http.StatusNotFound
	var answer any
	switch route {
	case "/start":
		switch req["account"] {
		case "limited@example.com":
			status = http.StatusTooManyRequests
		default:
			id := fmt.Sprintf("f%04d", len(g.flows))
			g.flows[id] = ""
			if req["account"] == "alice@example.com" {
				g.flows[id] = fmt.Sprintf("%06d", len(g.flows))
				line, _ := json.Marshal(map[string]string{
					"to":   "+31612345678",
					"body": "Code: " + g.flows[id] + "\nhttp://localhost/recovery/?flow=" + id + "\n\n@localhost #" + g.flows[id],
					"time": "2026-01-01T00:00:00Z",
				})
				f, err := os.OpenFile(g.outbox, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					panic(err)
				}
				// Half a line first, as a concurrent reader may see it.
				f.Write(line[:len(line)/2])
				f.Write(append(line[len(line)/2:], '\n'))
				f.Close()
			}
			status, answer = http.StatusAccepted, map[string]any{"flow": id, "expires_in": 300}
		}
	case "/verify":
		code, ok := g.flows[req["flow"]]
		switch {
		case !ok || g.used[req["flow"]]:
			status = http.StatusGone
		case code == "" || code != req["code"]:
			status = http.StatusBadRequest
		default:
			g.used[req["flow"]] = true
			status, answer = http.StatusOK, map[string]any{"reset_token": "t", "expires_in": 600}
		}
	}
	g.answers[fmt.Sprintf("%s %d", strings.TrimPrefix(route, "/"), status)]++
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(answer)
}

// counts is the report's "route status" → count, in the fake's terms.
func counts(r *recorder) map[string]int {
	m := map[string]int{}
	for route, s := range r.routes {
		for status, n := range s.status {
			m[fmt.Sprintf("%s %d", route, status)] += n
		}
	}
	return m
}

func TestLoad(t *testing.T) {
	t.Parallel()
	accounts := []string{"alice@example.com", "nobody@example.com", "limited@example.com"}
	tests := []struct {
		mode string
		n    int
		// want is the measured counts, or nil when they depend on timing.
		want      map[string]int
		wantSetup map[string]int
		wantCodes int
	}{
		{mode: modeStart, n: 300, want: map[string]int{"start 202": 200, "start 429": 100}},
		{
			mode: modeVerify, n: 300, want: map[string]int{"verify 200": 100},
			wantSetup: map[string]int{"start 202": 200, "start 429": 100}, wantCodes: 100,
		},
		{mode: modeMixed, n: 400},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			g, srv := newFakeGateway(t, 0)
			rep, err := load(context.Background(), config{
				base: srv.URL + "/recovery", accounts: accounts, n: tt.n, c: 8,
				duration: time.Minute, mode: tt.mode, outbox: g.outbox,
			})
			if err != nil {
				t.Fatal(err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			t.Logf("gateway answered %v", g.answers)
			got := counts(rep.measured)
			if tt.wantSetup != nil {
				setup := counts(rep.setup)
				if fmt.Sprint(setup) != fmt.Sprint(tt.wantSetup) {
					t.Errorf("setup counts = %v, want %v", setup, tt.wantSetup)
				}
				if rep.codes != tt.wantCodes {
					t.Errorf("codes read = %d, want %d", rep.codes, tt.wantCodes)
				}
				for k, v := range setup {
					got[k] += v // the fake counts setup and measured alike
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(g.answers) {
				t.Errorf("report counts %v, gateway answered %v", got, g.answers)
			}
			if tt.want != nil && fmt.Sprint(counts(rep.measured)) != fmt.Sprint(tt.want) {
				t.Errorf("measured counts = %v, want %v", counts(rep.measured), tt.want)
			}
			if total := rep.measured.total(); tt.mode != modeVerify && total != tt.n {
				t.Errorf("measured %d requests, want -n %d", total, tt.n)
			}
			if tt.mode == modeMixed {
				// Every verify used a code that arrived, once.
				if g.answers["verify 200"] == 0 || g.answers["verify 400"]+g.answers["verify 410"] != 0 {
					t.Errorf("mixed verifies: %v", g.answers)
				}
			}
			for _, h := range g.headers {
				for name := range h {
					if name != "Content-Type" && name != "User-Agent" && name != "Content-Length" && name != "Accept-Encoding" {
						t.Fatalf("sent header %s", name)
					}
				}
			}
		})
	}
}

// TestLoadDurationCap checks that a run ends at -duration, not -n.
func TestLoadDurationCap(t *testing.T) {
	t.Parallel()
	g, srv := newFakeGateway(t, 20*time.Millisecond)
	began := time.Now()
	rep, err := load(context.Background(), config{
		base: srv.URL + "/recovery", accounts: []string{"alice@example.com"}, n: 1_000_000, c: 4,
		duration: 300 * time.Millisecond, mode: modeStart, outbox: g.outbox,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("run took %s with -duration 300ms", took)
	}
	if total := rep.measured.total(); total == 0 || total > 4*300/20+4 {
		t.Errorf("measured %d requests; want some, at most what fits in 300ms", total)
	}
}

// TestRun checks the printed report and that errors stop a run before it
// sends anything.
func TestRun(t *testing.T) {
	t.Parallel()
	g, srv := newFakeGateway(t, 0)
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-url", srv.URL + "/recovery/", "-accounts", "alice@example.com, limited@example.com",
		"-n", "200", "-c", "4", "-mode", "verify", "-outbox", g.outbox}, &out, &errs)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, errs.String())
	}
	for _, want := range []string{
		"setup: 200 starts (202: 100, 429: 100), 100 codes read from the outbox",
		"mode verify: 100 requests in ",
		"verify  200: 100",
		"latency p50 ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	err = run(context.Background(), []string{"-url", "http://192.0.2.1:8080/recovery"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-allow-remote") {
		t.Errorf("remote host: error = %v, want one naming -allow-remote", err)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    config // checked when wantErr is ""
		wantErr string
	}{
		{"defaults", nil, config{
			base: "http://localhost:8080/recovery", n: 1000, c: 8, duration: time.Minute, mode: modeStart, outbox: "sms-outbox.jsonl",
			accounts: []string{"alice@example.com", "nobody1@example.com", "nobody2@example.com"},
		}, ""},
		{"all set", []string{"-url", "http://127.0.0.1:9000/r/", "-accounts", " a@x , ,b@x", "-n", "5", "-c", "2",
			"-duration", "3s", "-mode", "mixed", "-outbox", "/tmp/o.jsonl"}, config{
			base: "http://127.0.0.1:9000/r", accounts: []string{"a@x", "b@x"}, n: 5, c: 2, duration: 3 * time.Second,
			mode: modeMixed, outbox: "/tmp/o.jsonl",
		}, ""},
		{"remote allowed", []string{"-url", "https://mail.example.com/recovery", "-allow-remote"}, config{
			base: "https://mail.example.com/recovery", n: 1000, c: 8, duration: time.Minute, mode: modeStart, outbox: "sms-outbox.jsonl",
			accounts: []string{"alice@example.com", "nobody1@example.com", "nobody2@example.com"},
		}, ""},
		{"remote refused", []string{"-url", "https://mail.example.com/recovery"}, config{}, "-allow-remote"},
		{"bad mode", []string{"-mode", "reset"}, config{}, `-mode "reset"`},
		{"no accounts", []string{"-accounts", " , "}, config{}, "-accounts"},
		{"zero n", []string{"-n", "0"}, config{}, "-n 0"},
		{"zero c", []string{"-c", "0"}, config{}, "-c 0"},
		{"zero duration", []string{"-duration", "0s"}, config{}, "-duration 0s"},
		{"stray argument", []string{"start"}, config{}, `"start"`},
		{"unknown flag", []string{"-xff", "1.2.3.4"}, config{}, "-xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url         string
		allowRemote bool
		ok          bool
	}{
		{"http://localhost:8080/recovery", false, true},
		{"http://LOCALHOST/recovery", false, true},
		{"http://127.0.0.1:8080/recovery", false, true},
		{"http://127.8.9.10/recovery", false, true},
		{"https://[::1]:8443/recovery", false, true},
		{"http://192.0.2.1/recovery", false, false},
		{"http://[2001:db8::1]/recovery", false, false},
		{"http://0.0.0.0:8080/recovery", false, false},
		{"http://localhost.example.com/recovery", false, false},
		{"http://mail.example.com/recovery", false, false},
		{"http://mail.example.com/recovery", true, true},
		{"ftp://localhost/recovery", false, false},
		{"ftp://mail.example.com/recovery", true, false},
		{"/recovery", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s remote=%t", tt.url, tt.allowRemote), func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkTarget(u, tt.allowRemote); (err == nil) != tt.ok {
				t.Errorf("checkTarget = %v, want ok %t", err, tt.ok)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		d := make([]time.Duration, len(ns))
		for i, n := range ns {
			d[i] = time.Duration(n) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one value", ms(7), 50, 7 * time.Millisecond},
		{"one value p99", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 of 1..100", ms(hundred...), 100, 100 * time.Millisecond},
		{"p50 of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of four", ms(1, 2, 3, 4), 90, 4 * time.Millisecond},
		{"p0", ms(1, 2, 3, 4), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(p%g) = %s, want %s", tt.p, got, tt.want)
			}
		})
	}
}

// TestRunNoCodes checks the report of a verify run that found no codes:
// an unknown account gets no SMS, so there is nothing to verify.
func TestRunNoCodes(t *testing.T) {
	t.Parallel()
	g, srv := newFakeGateway(t, 0)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", srv.URL + "/recovery", "-accounts", "nobody@example.com",
		"-n", "20", "-c", "2", "-mode", "verify", "-outbox", g.outbox}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"setup: 20 starts (202: 20), 0 codes read from the outbox",
		"no codes: is -outbox the gateway's outbox file",
		"mode verify: 0 requests in ",
		": 0.0 requests/s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
