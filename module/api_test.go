package module

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
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

// TestProvisionNamesTheLanguage: a language without built-in texts is told
// as the language's mistake at load, not as the message template's.
func TestProvisionNamesTheLanguage(t *testing.T) {
	t.Parallel()
	h := validHandler()
	h.Language = "es"
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("Provision with language es succeeded")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, `language: no built-in texts for "es"`) || strings.Contains(msg, "message_template") {
		t.Fatalf("Provision() = %v, want the language named, not the template", err)
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

// TestContentTypeMistakes: a client of the API that posts JSON without
// saying so (curl -d sends it as a form) or as text is told, with the fix,
// in a JSON answer; nothing is started.
func TestContentTypeMistakes(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	for _, c := range []struct {
		name, contentType, body string
		fix                     string
	}{
		{"json sent as a form", "application/x-www-form-urlencoded", `{"account":"alice@example.com"}`, "Content-Type: application/json"},
		{"json sent as a form, spaced", "application/x-www-form-urlencoded", "\n  {\"account\": \"alice@example.com\"}\n", "Content-Type: application/json"},
		{"json sent as text", "text/plain", `{"account":"alice@example.com"}`, "application/json"},
		{"no content type", "", `{"account":"alice@example.com"}`, "application/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, e.url("/start"), strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct{ Error, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("answer is not JSON (%s): %v", resp.Header.Get("Content-Type"), err)
			}
			if resp.StatusCode != http.StatusUnsupportedMediaType || out.Error != "unsupported_media_type" || !strings.Contains(out.Message, c.fix) {
				t.Fatalf("%d %+v, want 415 unsupported_media_type naming %q", resp.StatusCode, out, c.fix)
			}
		})
	}
	// A form from the pages is still a form: no JSON, so the CSRF check
	// answers it, with a page.
	resp, err := http.Post(e.url("/start"), "application/x-www-form-urlencoded", strings.NewReader("account=alice%40example.com"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("a form without its CSRF token: %d %s, want the pages' 403", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestAnswerBytes pins the bytes and headers of the answers clients parse
// most: a started flow and a wrong code.
func TestAnswerBytes(t *testing.T) {
	t.Parallel()
	g := newOpsGateway(t, map[string]string{"bytes@example.com": "+31612345680"}, nil)
	jsonHeaders := http.Header{
		"Content-Type":           {"application/json; charset=utf-8"},
		"Cache-Control":          {"no-store"},
		"X-Content-Type-Options": {"nosniff"},
	}
	w := g.post("/start", "192.0.2.80", map[string]string{"account": "bytes@example.com"})
	started := regexp.MustCompile(`^\{"flow":"([A-Za-z0-9_-]{22})","expires_in":[1-9][0-9]*\}\n$`).FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusAccepted || started == nil || !maps.EqualFunc(w.Header(), jsonHeaders, slices.Equal) {
		t.Fatalf("start: %d %v %q", w.Code, w.Header(), w.Body)
	}
	// The answers share their header values: one added to an answer
	// reaches neither the next nor, added to that one, the first.
	first := w.Header()
	first.Add("Cache-Control", "private")
	flow := started[1]
	w = g.verify(flow, wrongCode(g.code(flow)), "192.0.2.80", http.StatusBadRequest)
	want := `{"error":"invalid_code","message":"That code is not right.","attempts_left":` + strconv.Itoa(defaultMaxAttempts-1) +
		`,"reference":"` + g.h.svc.Keys.TraceRef(flow) + "\"}\n"
	if w.Body.String() != want || !maps.EqualFunc(w.Header(), jsonHeaders, slices.Equal) {
		t.Errorf("wrong code: %v %q, want %v %q", w.Header(), w.Body, jsonHeaders, want)
	}
	w.Header().Add("Cache-Control", "public")
	if got := first.Values("Cache-Control"); !slices.Equal(got, []string{"no-store", "private"}) {
		t.Errorf("Cache-Control of the first answer became %q", got)
	}
}
