package module

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
