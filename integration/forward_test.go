package integration

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// forgedQuery is what an attacker appends to /reset in the hope that the
// upstream reads it: the signature covers @path, not @query.
const forgedQuery = "?account=admin%40example.com&user=admin"

// TestResetQueryNeverReachesUpstream sends a valid reset for alice with a
// query string naming another account, through the JSON API, a form that
// carries its own token, and the pages, and checks that the upstream gets
// no query string at all.
func TestResetQueryNeverReachesUpstream(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr})
	resets := []struct {
		name string
		do   func(want int) (status int)
	}{
		{"json", func(want int) int {
			token := c.tokenFor(alice, want)
			a := c.post("/recovery/reset"+forgedQuery, fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, token))
			return a.Status
		}},
		{"form with its token", func(want int) int {
			token := c.tokenFor(alice, want)
			status, _, _ := c.form("/recovery/reset"+forgedQuery, url.Values{"reset_token": {token}, "password": {"N3w-s3cret-passw0rd!"}})
			return status
		}},
		{"pages", func(want int) int {
			csrf := c.pagesToPassword(alice, want)
			status, _, _ := c.form("/recovery/reset"+forgedQuery, url.Values{
				"csrf": {csrf}, "password": {"N3w-s3cret-passw0rd!"}, "password_again": {"N3w-s3cret-passw0rd!"},
			})
			return status
		}},
	}
	for i, r := range resets {
		// Each reset sends a code and a notice of the change.
		last := up.nthReset(t, r.name, r.do(2*i+1), i)
		if last.query != "" || last.requestURI != "/api/reset-password" || last.account != alice {
			t.Errorf("%s: upstream got query %q, request URI %q for %q; want no query, /api/reset-password, %s",
				r.name, last.query, last.requestURI, last.account, alice)
		}
	}
}

// nthReset fails the test unless a reset named name answered status 200
// and was the upstream's i-th (0-based); it returns what the upstream got.
func (u *upstream) nthReset(t *testing.T, name string, status, i int) received {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("%s: reset answered %d", name, status)
	}
	got := u.got()
	if len(got) != i+1 {
		t.Fatalf("%s: upstream got %d resets, want %d", name, len(got), i+1)
	}
	return got[i]
}

// tokenFor starts a flow for account, waits for its code among the first n
// messages of the outbox, and returns the reset token a right code yields.
func (c *client) tokenFor(account string, n int) string {
	c.t.Helper()
	flow := c.startFlow(account)
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, c.codeOf(flow)))
	if a.Status != http.StatusOK || a.str("reset_token") == "" {
		c.t.Fatalf("verify: %d %s", a.Status, a.Raw)
	}
	return a.str("reset_token")
}

var csrfInput = regexp.MustCompile(`name="csrf"[^>]*?value="([^"]*)"`)

// pagesToPassword walks the pages as a browser does, up to the
// new-password step, with the code among the first n messages, and
// returns the CSRF token the reset form must post.
func (c *client) pagesToPassword(account string, n int) string {
	c.t.Helper()
	res, err := c.http.Get(gateway + "/recovery/")
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfInput.FindStringSubmatch(string(body))
	if m == nil {
		c.t.Fatalf("account page has no csrf field: %d %s", res.StatusCode, body)
	}
	csrf := html.UnescapeString(m[1])
	status, final, _ := c.form("/recovery/start", url.Values{"csrf": {csrf}, "account": {account}})
	flow := final.Query().Get("flow")
	if status != http.StatusOK || flow == "" {
		c.t.Fatalf("start from the page: %d at %s", status, final)
	}
	status, final, _ = c.form("/recovery/verify", url.Values{"csrf": {csrf}, "flow": {flow}, "code": {c.codeOf(flow)}})
	if status != http.StatusOK || final.Query().Get("step") != "password" {
		c.t.Fatalf("verify from the page: %d at %s", status, final)
	}
	return csrf
}

// form posts a form, following redirects as a browser does, and returns
// the status, the address and the body of the last answer.
func (c *client) form(path string, v url.Values) (int, *url.URL, string) {
	c.t.Helper()
	res, err := c.http.Post(gateway+path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Request.URL, string(body)
}

// TestForwardFieldsNarrowBody resets with bodies that carry fields beside
// the password, such as the account or user another upstream route might
// read, and checks that with "fields password" only the password reaches
// the upstream, from JSON, from a form with its token and from the pages.
func TestForwardFieldsNarrowBody(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Forward: "fields password"})
	const pw = "N3w-s3cret-passw0rd!"
	resets := []struct {
		name string
		do   func(want int) int
		body string // what the upstream must get
	}{
		{"json", func(want int) int {
			token := c.tokenFor(alice, want)
			return c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":%q,"account":"admin@example.com","user":"admin"}`, token, pw)).Status
		}, fmt.Sprintf(`{"password":%q}`, pw)},
		{"form with its token", func(want int) int {
			token := c.tokenFor(alice, want)
			status, _, _ := c.form("/recovery/reset", url.Values{"reset_token": {token}, "password": {pw}, "account": {"admin@example.com"}, "user": {"admin"}})
			return status
		}, url.Values{"password": {pw}}.Encode()},
		{"pages", func(want int) int {
			csrf := c.pagesToPassword(alice, want)
			status, _, _ := c.form("/recovery/reset", url.Values{
				"csrf": {csrf}, "password": {pw}, "password_again": {pw}, "account": {"admin@example.com"}, "user": {"admin"},
			})
			return status
		}, url.Values{"password": {pw}}.Encode()},
	}
	for i, r := range resets {
		last := up.nthReset(t, r.name, r.do(2*i+1), i)
		if last.body != r.body || last.account != alice {
			t.Errorf("%s: upstream got body %q for %q, want %q for %s", r.name, last.body, last.account, r.body, alice)
		}
	}
}
