package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestForgedHostNeverReachesSMS starts flows with a forged Host header and
// reads the SMS the outbox got: its link and its @host line come from
// public_url, set or taken from the site address, and never from the
// request. A site that names no single host does not load without
// public_url. It failed before public_url had its default: the link
// followed the Host header.
func TestForgedHostNeverReachesSMS(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")

	t.Run("public_url from the site address", func(t *testing.T) {
		c := start(t, &site{Upstream: up.addr})
		// Caddy matches the site's host whatever the port, so a Host with
		// another port reaches the gateway.
		body := c.smsForHost(t, "localhost:6666")
		wantSMS(t, body, gateway, "localhost", "6666")
	})

	t.Run("catch-all site with public_url", func(t *testing.T) {
		c := start(t, &site{Address: fmt.Sprintf(":%d", httpPort), PublicURL: "https://mail.example.com", Upstream: up.addr})
		body := c.smsForHost(t, "evil.example")
		wantSMS(t, body, "https://mail.example.com", "mail.example.com", "evil.example")
	})

	t.Run("catch-all site without public_url", func(t *testing.T) {
		s := site{
			Address:  fmt.Sprintf(":%d", httpPort),
			Upstream: up.addr,
			Outbox:   filepath.Join(t.TempDir(), "outbox.jsonl"),
			Store:    100_000 + int(stores.Add(1)),
		}
		err := load(t, s)
		if err == nil {
			// It loaded: show what the SMS link follows.
			c := &client{t: t, http: http.DefaultClient, outbox: s.Outbox}
			t.Fatalf("a site without a single host loaded without public_url; its SMS reads %q", c.smsForHost(t, "evil.example"))
		}
		for _, want := range []string{"public_url: required", "no single host", "forged Host"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("load error %q does not say %q", err, want)
			}
		}
	})
}

// smsForHost starts a flow for alice with the Host header host and returns
// the body of the SMS it sends.
func (c *client) smsForHost(t *testing.T, host string) string {
	t.Helper()
	a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice), "Host", host)
	if a.Status != http.StatusAccepted {
		t.Fatalf("start with Host %s: %d %s", host, a.Status, a.Raw)
	}
	msgs := c.messages(1)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "?flow="+a.str("flow")) {
		t.Fatalf("outbox = %+v, want the SMS of flow %s", msgs, a.str("flow"))
	}
	return msgs[0].Body
}

// wantSMS checks that body links to base and ends with the origin-bound
// line of host, and that forged appears nowhere in it.
func wantSMS(t *testing.T, body, base, host, forged string) {
	t.Helper()
	if !strings.Contains(body, base+"/recovery/?flow=") {
		t.Errorf("SMS %q does not link to %s/recovery/", body, base)
	}
	if line := codeLine.FindString(body); !strings.HasPrefix(line, "@"+host+" #") {
		t.Errorf("SMS %q ends with %q, want @%s #<code>", body, line, host)
	}
	if strings.Contains(body, forged) {
		t.Errorf("the forged Host %q reached the SMS %q", forged, body)
	}
}
