package module

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// TestForgedHostNeverReachesSMS starts flows through the JSON API and the
// pages with a forged Host header, and checks that the SMS links to
// public_url and names its host, and holds nothing of the forged one.
func TestForgedHostNeverReachesSMS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(e *pageEnv, host string)
	}{
		{"json", func(e *pageEnv, host string) {
			req, err := http.NewRequest(http.MethodPost, e.url("/start"), strings.NewReader(`{"account":"alice@example.com"}`))
			if err != nil {
				e.t.Fatal(err)
			}
			req.Host = host
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				e.t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				e.t.Fatalf("start: %d", resp.StatusCode)
			}
		}},
		{"pages", func(e *pageEnv, host string) {
			// A jar that sends the cookies back whatever the Host header
			// and, though public_url is https, over http.
			b := e.browser()
			b.c.Jar = &anySchemeJar{}
			p := b.get(e.url("/"))
			req, err := http.NewRequest(http.MethodPost, e.url("/start"), strings.NewReader(url.Values{"csrf": {p.field("csrf")}, "account": {pageTestAccount}}.Encode()))
			if err != nil {
				e.t.Fatal(err)
			}
			req.Host = host
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if p := b.do(req); p.StatusCode != http.StatusSeeOther {
				e.t.Fatalf("start: %d\n%s", p.StatusCode, p.text())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, func(h *Handler) { h.PublicURL = "https://mail.example.com" })
			tt.start(e, "evil.example")
			body := e.waitMessages(1)[0].Body
			if !strings.Contains(body, "https://mail.example.com/recovery/?flow=") || !strings.Contains(body, "\n@mail.example.com #") {
				t.Errorf("SMS %q does not link to public_url", body)
			}
			if strings.Contains(body, "evil") {
				t.Errorf("the forged Host reached the SMS %q", body)
			}
		})
	}
}

// TestProvisionRefusesNoPublicURL checks that a gateway without public_url,
// as a JSON config or a Caddyfile site with no single host gives it, does
// not load, and that the error says which option and why.
func TestProvisionRefusesNoPublicURL(t *testing.T) {
	t.Parallel()
	h := validHandler()
	h.PublicURL = ""
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("Provision without public_url succeeded")
	}
	for _, want := range []string{"public_url: required", "no single host", "forged Host header"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Provision() = %v, want it to say %q", err, want)
		}
	}
}

// TestWriteStartedIsWriteJSON checks the hand-written answer to /start
// against what writeJSON makes of a startResponse: same status, headers
// and bytes.
func TestWriteStartedIsWriteJSON(t *testing.T) {
	for _, c := range []struct {
		flow string
		secs int64
	}{{"AbCd-_0123456789abcdef", 600}, {"x", 0}, {"", -1}, {"Zz_-", 1 << 40}} {
		body, err := json.Marshal(startResponse{Flow: c.flow, ExpiresIn: c.secs})
		if err != nil {
			t.Fatal(err)
		}
		want := http.Header{
			"Content-Type":           {"application/json; charset=utf-8"},
			"Cache-Control":          {"no-store"},
			"X-Content-Type-Options": {"nosniff"},
		}
		got := httptest.NewRecorder()
		writeStarted(got, c.flow, c.secs)
		if got.Code != http.StatusAccepted || got.Body.String() != string(body)+"\n" || !reflect.DeepEqual(got.Header(), want) {
			t.Errorf("writeStarted(%q, %d) = %d %v %q, want 202 %v %q", c.flow, c.secs,
				got.Code, got.Header(), got.Body, want, string(body)+"\n")
		}
		// A header added to one answer is not added to the next.
		got.Header().Add("Cache-Control", "private")
		next := httptest.NewRecorder()
		writeStarted(next, c.flow, c.secs)
		if !reflect.DeepEqual(next.Header(), want) {
			t.Fatalf("after an Add to an earlier answer, headers are %v, want %v", next.Header(), want)
		}
	}
}

// TestJSONBodies sends /start bodies that are too large, malformed or
// trailed by more, between good ones: each bad one gets its 4xx, and the
// good one after it, decoded from a reused buffer, is read as sent.
func TestJSONBodies(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) {
		h.Limits = map[string]Limit{}
		for _, scope := range limitScopes {
			h.Limits[scope] = Limit{Events: 1 << 20, Window: caddy.Duration(time.Hour)}
		}
	})
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(e.url("/start"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Flow  string `json:"flow"`
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("answer to %.40q: %v", body, err)
		}
		return resp.StatusCode, out.Flow + out.Error
	}
	good := func() {
		t.Helper()
		if status, flow := post(`{"account":"alice@example.com"}`); status != http.StatusAccepted || len(flow) != 22 {
			t.Fatalf("good body after a bad one: %d %q", status, flow)
		}
	}
	good()
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"account":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{`{"account":"alice@example.com"`, http.StatusBadRequest, "invalid_request"},
		{`{"account":"alice@example.com"} {}`, http.StatusBadRequest, "invalid_request"},
		{`{"account":"` + strings.Repeat("b", 8<<10) + `"`, http.StatusBadRequest, "invalid_request"},
	} {
		if status, code := post(c.body); status != c.status || code != c.code {
			t.Errorf("body %.40q: %d %q, want %d %q", c.body, status, code, c.status, c.code)
		}
		good()
	}
}

// TestWriteInvalidCodeIsWriteJSON holds the answer to a wrong code, written
// without reflection, to what writeJSON writes for it.
func TestWriteInvalidCodeIsWriteJSON(t *testing.T) {
	h := &Handler{}
	for _, left := range []int{0, 1, 4, 19, 1 << 40} {
		want := httptest.NewRecorder()
		e := h.errorFor(&recovery.CodeError{AttemptsLeft: left})
		writeJSON(want, e.status, e)
		got := httptest.NewRecorder()
		writeError(got, e)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
			t.Errorf("%d left: got %d %v %q, want %d %v %q", left, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}
