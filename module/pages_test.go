package module

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
)

// pageTestKey is the test-only hmac key the gateway signs with and the fake
// upstream verifies with.
var pageTestKey = bytes.Repeat([]byte{0x42}, 64)

const (
	pageTestAccount  = "alice@example.com"
	pageTestPhone    = "+31612345678"
	pageTestPassword = "correct horse battery staple"
	pageTestReset    = "/api/reset-password"
)

// pageEnv is a provisioned gateway behind an httptest server, with a fake
// upstream as its next handler.
type pageEnv struct {
	t        testing.TB
	h        *Handler
	srv      *httptest.Server
	outbox   string
	upstream *fakeUpstream
	logs     *zapobs.ObservedLogs
	events   *opsEvents // wakes waitMessages at every SMS outcome
	closed   sync.Once
}

// close cleans the handler up, which drains its SMS queue: every message a
// request queued is in the outbox, or was dropped and logged, once it
// returns.
func (e *pageEnv) close() {
	e.closed.Do(func() {
		if err := e.h.Cleanup(); err != nil {
			e.t.Errorf("Cleanup: %v", err)
		}
	})
}

// newPageEnv provisions a gateway for alice (and bob, who prefers German),
// after configure has changed its settings.
func newPageEnv(t testing.TB, configure func(h *Handler)) *pageEnv {
	t.Helper()
	dir := t.TempDir()
	dirFile := filepath.Join(dir, "directory.json")
	entries := `{"alice@example.com": "+31612345678", "bob@example.com": {"phone": "+4915112345678", "lang": "de"}}`
	if err := os.WriteFile(dirFile, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &pageEnv{t: t, outbox: filepath.Join(dir, "outbox.jsonl")}
	e.h = &Handler{
		// Plain http, as the test server speaks it: its cookies are not
		// Secure, so the browsers' jars send them back.
		PublicURL:    "http://mail.example.com",
		SiteName:     "Example Mail",
		Support:      "Call +1 555 0100",
		DirectoryRaw: fileDirectory(dirFile),
		SenderRaw:    outboxSender(e.outbox),
		StorageRaw:   ownMemoryStorage(),
		Forward: &Forward{
			Path:    pageTestReset,
			KeyID:   "gw1",
			HMACKey: base64.StdEncoding.EncodeToString(pageTestKey),
		},
	}
	if configure != nil {
		configure(e.h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := e.h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(e.close)
	core, logs := zapobs.New(zapcore.DebugLevel)
	e.logs = logs
	e.h.logger = zap.New(core)
	e.h.observer.logger = e.h.logger
	// A context made without a config has no events app: the handler gets
	// one whose subscriber wakes the tests that wait for an SMS.
	e.events = newOpsEvents(t, ctx)
	e.h.observer.events = e.events.app

	v, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", HMACKey: pageTestKey})
	if err != nil {
		t.Fatal(err)
	}
	e.upstream = &fakeUpstream{verifier: v}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

// serve plays Caddy's part: it sets the client IP and turns a handler error
// into its status.
func (e *pageEnv) serve(w http.ResponseWriter, r *http.Request) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	if err := e.h.ServeHTTP(w, r.WithContext(ctx), e.upstream); err != nil {
		status := http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
		http.Error(w, http.StatusText(status), status)
	}
}

// url returns the address of a path below the prefix.
func (e *pageEnv) url(path string) string {
	return e.srv.URL + "/recovery" + path
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that tests see every answer.
type browser struct {
	t      testing.TB
	c      *http.Client
	lang   string
	header http.Header // sent with every request, unless the request sets it
}

func (e *pageEnv) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{t: e.t, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one answer, its body read.
type page struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	for name, v := range b.header {
		if _, set := req.Header[name]; !set {
			req.Header[name] = v
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{resp, string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// follow gets the page a redirect points to.
func (b *browser) follow(p page) page {
	b.t.Helper()
	if p.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("status %d, want 303; body:\n%s", p.StatusCode, p.body)
	}
	loc, err := p.Request.URL.Parse(p.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	return b.get(loc.String())
}

// field returns the value of the input called name in p.
func (p page) field(name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `"[^>]*?value="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// text returns the page's text with tags dropped and spaces collapsed.
func (p page) text() string {
	s := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(p.body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

// want fails unless p has status and its text holds every one of texts.
func (p page) want(t testing.TB, status int, texts ...string) {
	t.Helper()
	if p.StatusCode != status {
		t.Fatalf("status %d, want %d; page:\n%s", p.StatusCode, status, p.text())
	}
	for _, s := range texts {
		if !strings.Contains(p.text(), s) {
			t.Errorf("page lacks %q; page:\n%s", s, p.text())
		}
	}
}

// outboxSMS is one line of the outbox.
type outboxSMS struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// messages returns the outbox as it is now.
func (e *pageEnv) messages() []outboxSMS {
	e.t.Helper()
	return readOutbox(e.t, e.outbox)
}

// readOutbox returns the lines of the outbox file at path so far; a line
// being written is left out.
func readOutbox(t testing.TB, path string) []outboxSMS {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []outboxSMS
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m outboxSMS
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitMessages waits until the outbox holds n messages, which the queue
// delivers in the background: it reads the outbox again at each SMS
// outcome, which is emitted once the line is written.
func (e *pageEnv) waitMessages(n int) []outboxSMS {
	e.t.Helper()
	var ms []outboxSMS
	if !e.events.recorded.Await(awaitTimeout, func() bool {
		ms = e.messages()
		return len(ms) >= n
	}) {
		e.t.Fatalf("outbox has %d messages after %v, want %d", len(ms), awaitTimeout, n)
	}
	return ms
}

var smsCode = regexp.MustCompile(`#(\d+)\s*$`)

// code returns the code of the newest message for flow.
func (e *pageEnv) code(flow string, n int) string {
	e.t.Helper()
	ms := e.waitMessages(n)
	m := ms[n-1]
	if !strings.Contains(m.Body, "?flow="+flow) {
		e.t.Fatalf("message %d is not for flow %s: %q", n, flow, m.Body)
	}
	c := smsCode.FindStringSubmatch(m.Body)
	if c == nil {
		e.t.Fatalf("no code in %q", m.Body)
	}
	return c[1]
}

// fakeUpstream is the next handler: it checks the gateway's signature with
// the httpsig package and records the resets it gets.
type fakeUpstream struct {
	verifier *httpsig.Verifier

	mu      sync.Mutex
	status  int   // the answer to a reset; 0 means 200
	err     error // returned instead of answering, as when it is unreachable
	resets  []upstreamReset
	headers []http.Header // of each reset
}

type upstreamReset struct {
	Account     string
	Body        string
	ContentType string
	Cookie      string
	Query       string // a query string of the URL or the request URI, which no signature covers
}

func (u *fakeUpstream) answer(status int, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status, u.err = status, err
}

func (u *fakeUpstream) got() []upstreamReset {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.resets)
}

// gotHeaders returns the headers of the resets the upstream took.
func (u *fakeUpstream) gotHeaders() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.headers)
}

// queryOf returns the query string r carries in its URL or its request
// URI, with its "?", or "" if it has none.
func queryOf(r *http.Request) string {
	if _, q, ok := strings.Cut(r.RequestURI, "?"); ok {
		return "?" + q
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return "?" + r.URL.RawQuery
	}
	return ""
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path != pageTestReset {
		http.NotFound(w, r)
		return nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	account, err := u.verifier.Verify(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), body, time.Now())
	if err != nil {
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return u.err
	}
	u.resets = append(u.resets, upstreamReset{
		Account:     account,
		Body:        string(body),
		ContentType: r.Header.Get("Content-Type"),
		Cookie:      r.Header.Get("Cookie"),
		Query:       queryOf(r),
	})
	u.headers = append(u.headers, r.Header.Clone())
	status := u.status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"status":%d}`, status)
	return nil
}

// startFlow walks b from the account page to the code page of a new flow
// and returns that page and the flow's ID.
func (e *pageEnv) startFlow(b *browser, account string) (page, string) {
	e.t.Helper()
	p := b.get(e.url("/"))
	p.want(e.t, http.StatusOK)
	p = b.post(e.url("/start"), url.Values{"csrf": {p.field("csrf")}, "account": {account}})
	if p.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("start: status %d, want 303; page:\n%s", p.StatusCode, p.text())
	}
	p = b.follow(p)
	p.want(e.t, http.StatusOK)
	flow := p.field("flow")
	if flow == "" {
		e.t.Fatalf("code page has no flow field:\n%s", p.body)
	}
	return p, flow
}

// verifyFlow enters the right code on the code page p and follows on to
// the new-password page.
func (e *pageEnv) verifyFlow(b *browser, p page, flow string, nthSMS int) page {
	e.t.Helper()
	code := e.code(flow, nthSMS)
	p = b.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {code}})
	p = b.follow(p)
	p.want(e.t, http.StatusOK)
	return p
}

// walkToDone walks b through the pages, from the account page to the done
// page.
func (e *pageEnv) walkToDone(b *browser) {
	e.t.Helper()
	p, flow := e.startFlow(b, pageTestAccount)
	p = e.verifyFlow(b, p, flow, 1)
	p = b.post(e.url("/reset"), url.Values{"csrf": {p.field("csrf")}, "password": {pageTestPassword}, "password_again": {pageTestPassword}})
	p.want(e.t, http.StatusOK, "Your password has been changed")
}

func TestPagesFlowEndToEnd(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()

	p := b.get(e.url("/"))
	p.want(t, http.StatusOK, "Reset your Example Mail password", "Email address or user name", "Text me a code", "Need help? Call +1 555 0100")
	csrf := p.field("csrf")
	if csrf == "" {
		t.Fatal("account page has no csrf field")
	}

	p = b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {"  Alice@Example.com "}})
	if p.StatusCode != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/recovery/?flow=") {
		t.Fatalf("start: status %d Location %q, want 303 to the code page", p.StatusCode, p.Header.Get("Location"))
	}
	p = b.follow(p)
	p.want(t, http.StatusOK, "Check your phone", "6-digit code", "works for 5 minutes", "Send a new code")
	flow := p.field("flow")
	ms := e.waitMessages(1)
	if ms[0].To != pageTestPhone {
		t.Errorf("SMS went to %q, want %q", ms[0].To, pageTestPhone)
	}

	p = b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "flow": {flow}, "code": {e.code(flow, 1)}})
	if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/recovery/?step=password" {
		t.Fatalf("verify: status %d Location %q, want 303 to the password page", p.StatusCode, p.Header.Get("Location"))
	}
	token := resetCookieOf(t, p)
	if strings.Contains(p.Header.Get("Location"), token) {
		t.Error("the reset token is in a URL")
	}

	p = b.follow(p)
	p.want(t, http.StatusOK, "Choose a new password", "At least 12 characters")
	if strings.Contains(p.body, token) {
		t.Error("the password page holds the reset token; it belongs in the HttpOnly cookie only")
	}

	p = b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}})
	p.want(t, http.StatusOK, "Your password has been changed", "sign in to Example Mail", "text message to confirm")
	if c := cookieNamed(p.Cookies(), resetCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("done page does not delete the reset cookie: %v", c)
	}

	got := e.upstream.got()
	if len(got) != 1 {
		t.Fatalf("upstream got %d resets, want 1", len(got))
	}
	want := upstreamReset{
		Account:     pageTestAccount,
		Body:        url.Values{"password": {pageTestPassword}}.Encode(),
		ContentType: "application/x-www-form-urlencoded",
	}
	if got[0] != want {
		t.Errorf("upstream got %+v, want %+v", got[0], want)
	}
	e.waitMessages(2) // the notice of the change

	// The token is spent: posting again changes nothing.
	p = b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}})
	p.want(t, http.StatusUnauthorized, "Time ran out")
	if n := len(e.upstream.got()); n != 1 {
		t.Errorf("upstream got %d resets after the token was spent, want 1", n)
	}

	for _, entry := range e.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, secret := range []string{token, pageTestPassword, pageTestPhone} {
			if strings.Contains(line, secret) {
				t.Errorf("log line holds a secret: %s", line)
			}
		}
	}
}

// resetCookieOf returns the reset token p sets, checking the cookie keeps
// it from scripts and other sites.
func resetCookieOf(t testing.TB, p page) string {
	t.Helper()
	c := cookieNamed(p.Cookies(), resetCookie)
	switch {
	case c == nil || c.Value == "":
		t.Fatal("no reset cookie set")
	case !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/recovery":
		t.Errorf("reset cookie is %q, want HttpOnly, SameSite=Strict and Path=/recovery", c.String())
	case c.MaxAge != 600:
		t.Errorf("reset cookie Max-Age %d, want the token's 600 s", c.MaxAge)
	}
	return c.Value
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestPagesSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	wantHeaders := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	}
	b := e.browser()
	csrf := b.get(e.url("/")).field("csrf")
	tests := []struct {
		name   string
		do     func() page
		status int
	}{
		{"account", func() page { return b.get(e.url("/")) }, http.StatusOK},
		{"code", func() page { return b.get(e.url("/?flow=AAAAAAAAAAAAAAAAAAAAAA")) }, http.StatusOK},
		{"password without token", func() page { return b.get(e.url("/?step=password")) }, http.StatusUnauthorized},
		{"bad link", func() page { return b.get(e.url("/?flow=%3Cscript%3E")) }, http.StatusOK},
		{"wrong code format", func() page {
			return b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "flow": {"AAAAAAAAAAAAAAAAAAAAAA"}, "code": {"12"}})
		}, http.StatusBadRequest},
		{"expired", func() page {
			return b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "flow": {"AAAAAAAAAAAAAAAAAAAAAA"}, "code": {"123456"}})
		}, http.StatusGone},
		{"forged", func() page { return b.post(e.url("/start"), url.Values{"account": {pageTestAccount}}) }, http.StatusForbidden},
		{"unknown route", func() page { return b.post(e.url("/nothing"), url.Values{"csrf": {csrf}}) }, http.StatusNotFound},
		{"redirect", func() page {
			return b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {"nobody@example.com"}})
		}, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.do()
			if p.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; page:\n%s", p.StatusCode, tt.status, p.text())
			}
			for k, v := range wantHeaders {
				if k == "Content-Type" && p.StatusCode == http.StatusSeeOther {
					continue
				}
				if got := p.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if strings.Contains(p.body, "<script") {
				t.Error("page holds a script")
			}
			if strings.Contains(p.body, "style=\"") || strings.Contains(p.body, "<style") {
				t.Error("page holds an inline style, which the CSP would block")
			}
		})
	}
}

func TestPagesCSRFCookie(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	p := e.browser().get(e.url("/"))
	c := cookieNamed(p.Cookies(), csrfCookie)
	if c == nil {
		t.Fatal("the account page sets no CSRF cookie")
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/recovery" || c.Secure {
		t.Errorf("CSRF cookie %q, want HttpOnly, SameSite=Strict, Path=/recovery and, with an http public_url over plain HTTP, not Secure", c.String())
	}
	if p.field("csrf") != c.Value {
		t.Error("the hidden csrf field does not hold the cookie's token")
	}

	// Over TLS the cookie is Secure.
	r := httptest.NewRequest(http.MethodGet, "https://mail.example.com/recovery/", nil)
	w := httptest.NewRecorder()
	if err := e.h.servePage(w, r); err != nil {
		t.Fatal(err)
	}
	if c := cookieNamed(w.Result().Cookies(), csrfCookie); c == nil || !c.Secure {
		t.Errorf("CSRF cookie over TLS is %v, want Secure", c)
	}
}

// TestPagesCookiesSecureBehindTLSTerminator walks the pages over plain
// HTTP, as Caddy sees them behind a load balancer that terminates TLS, with
// an https public_url: every cookie the pages set, and the one they delete,
// is Secure, so that a browser never sends them over plain HTTP. It failed
// before cookies took Secure from public_url as well as from r.TLS.
func TestPagesCookiesSecureBehindTLSTerminator(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.PublicURL = "https://mail.example.com" })
	b := e.browser()
	jar := &anySchemeJar{}
	b.c.Jar = jar // records every cookie the pages set

	e.walkToDone(b)

	names := map[string]bool{}
	for _, c := range jar.set {
		names[c.Name] = true
		if !c.Secure {
			t.Errorf("cookie %q is not Secure, though public_url is https", c.String())
		}
	}
	if !names[hostCookiePrefix+csrfCookie] || !names[hostCookiePrefix+resetCookie] {
		t.Errorf("the pages set cookies %v, want %s and %s", slices.Sorted(maps.Keys(names)), hostCookiePrefix+csrfCookie, hostCookiePrefix+resetCookie)
	}
}

// TestPagesHostPrefixedCookies walks the pages with an https public_url
// through a jar that keeps a __Host- cookie only as a browser does (RFC
// 6265bis §4.1.3.2: Secure, Path=/, no Domain), so that the walk ends at
// the done page only if every cookie the pages set satisfies the prefix.
// Each cookie must carry the prefix, which no sibling subdomain and no
// plain-http page can then plant or overwrite, and none may reach the
// upstream. With an http public_url (localhost) the names and the path stay
// as they were: the prefix needs Secure, which plain HTTP cannot keep. It
// failed before the names took the prefix from an https public_url.
func TestPagesHostPrefixedCookies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		publicURL    string
		csrf, reset  string
		path         string
		secure, host bool
	}{
		{"https://mail.example.com", "__Host-smsrec_csrf", "__Host-smsrec_reset", "/", true, true},
		{"http://localhost:8080", "smsrec_csrf", "smsrec_reset", "/recovery", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.publicURL, func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, func(h *Handler) { h.PublicURL = tt.publicURL })
			b := e.browser()
			jar := &anySchemeJar{hostPrefix: true}
			b.c.Jar = jar

			e.walkToDone(b)

			names := map[string]bool{}
			for _, c := range jar.set {
				names[c.Name] = true
				if c.Path != tt.path || c.Domain != "" || c.Secure != tt.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
					t.Errorf("cookie %q, want Path=%s, no Domain, Secure %v, HttpOnly, SameSite=Strict", c.String(), tt.path, tt.secure)
				}
			}
			if want := []string{tt.csrf, tt.reset}; !slices.Equal(slices.Sorted(maps.Keys(names)), want) {
				t.Errorf("the pages set cookies %v, want %v", slices.Sorted(maps.Keys(names)), want)
			}
			if len(jar.refused) > 0 {
				t.Errorf("a browser refuses the cookies %q", jar.refused)
			}
			got := e.upstream.got()
			if len(got) != 1 || strings.Contains(got[0].Cookie, "smsrec_") {
				t.Errorf("upstream got %+v, want one reset without the pages' cookies", got)
			}
		})
	}
}

// anySchemeJar keeps the cookies it is given whatever the scheme, and
// remembers every one it was given.
type anySchemeJar struct {
	// hostPrefix refuses a __Host- cookie that is not Secure, has a Domain
	// or a Path other than /, as browsers do.
	hostPrefix bool

	mu      sync.Mutex
	set     []*http.Cookie
	refused []string
	live    map[string]*http.Cookie
}

func (j *anySchemeJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.live == nil {
		j.live = map[string]*http.Cookie{}
	}
	for _, c := range cs {
		if j.hostPrefix && strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Domain != "" || c.Path != "/") {
			j.refused = append(j.refused, c.String())
			continue
		}
		j.set = append(j.set, c)
		if c.MaxAge < 0 {
			delete(j.live, c.Name)
		} else {
			j.live[c.Name] = c
		}
	}
}

func (j *anySchemeJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Collect(maps.Values(j.live))
}

// TestPagesForgedPostsChangeNothing posts each form without the CSRF token
// the cookie holds, and checks that the gateway refuses it and that no
// flow, attempt, code or reset came of it.
func TestPagesForgedPostsChangeNothing(t *testing.T) {
	t.Parallel()
	forgeries := []struct {
		name  string
		forge func(e *pageEnv, b *browser, real string) url.Values // the csrf field of a forged post
	}{
		{"no field", func(*pageEnv, *browser, string) url.Values { return url.Values{} }},
		{"empty field", func(*pageEnv, *browser, string) url.Values { return url.Values{"csrf": {""}} }},
		{"wrong field", func(*pageEnv, *browser, string) url.Values { return url.Values{"csrf": {strings.Repeat("A", 43)}} }},
		{"token of another browser", func(e *pageEnv, _ *browser, _ string) url.Values {
			return url.Values{"csrf": {e.browser().get(e.url("/")).field("csrf")}}
		}},
		{"no cookie", func(_ *pageEnv, b *browser, real string) url.Values {
			b.c.Jar, _ = cookiejar.New(nil)
			return url.Values{"csrf": {real}}
		}},
	}
	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewManual(time.Now())
			e := newPageEnv(t, func(h *Handler) {
				h.MaxAttempts = 1
				h.ResendInterval = caddy.Duration(leastResendInterval)
				h.Limits = map[string]Limit{"start_account": {Events: 2, Window: caddy.Duration(time.Hour)}}
				h.clock = clk
			})
			b := e.browser()
			p, flow := e.startFlow(b, pageTestAccount)
			csrf := p.field("csrf")
			code := e.code(flow, 1)
			clk.Advance(leastResendInterval) // a resend that got through would send a code

			forged := func(route string, fields url.Values) {
				t.Helper()
				jar := b.c.Jar
				form := f.forge(e, b, csrf)
				maps.Copy(form, fields)
				p := b.post(e.url(route), form)
				b.c.Jar = jar
				p.want(t, http.StatusForbidden, "This page has expired", "Allow cookies")
			}
			forged("/start", url.Values{"account": {pageTestAccount}})
			forged("/resend", url.Values{"flow": {flow}})
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			forged("/verify", url.Values{"flow": {flow}, "code": {wrong}})

			// The forged wrong code did not use up the flow's single attempt.
			p = b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "flow": {flow}, "code": {code}})
			if p.StatusCode != http.StatusSeeOther {
				t.Fatalf("real verify after forgeries: status %d; page:\n%s", p.StatusCode, p.text())
			}
			// The forged start did not count against start_account (2 per hour).
			if _, second := e.startFlow(b, pageTestAccount); second == flow {
				t.Error("second start returned the first flow")
			}
			// A forged reset neither reaches the upstream nor spends the token.
			forged("/reset", url.Values{"password": {pageTestPassword}, "password_again": {pageTestPassword}})
			if n := len(e.upstream.got()); n != 0 {
				t.Fatalf("upstream got %d resets from forged posts", n)
			}
			p = b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}})
			p.want(t, http.StatusOK, "Your password has been changed")

			// No SMS went out for the forged start or resend: once the queue
			// has drained, the outbox holds the codes of the two real
			// starts and the notice of the reset, nothing more.
			e.close()
			if ms := e.messages(); len(ms) != 3 {
				t.Errorf("outbox has %d messages, want the 2 codes of the real starts and the reset notice: %v", len(ms), ms)
			}
		})
	}
}

func TestPagesLanguage(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.Language = "nl" })
	tests := []struct {
		accept string
		lang   string
		text   string
	}{
		{"", "nl", "Uw Example Mail wachtwoord herstellen"},
		{"de-DE,de;q=0.9,en;q=0.8", "de", "Ihr Passwort für Example Mail zurücksetzen"},
		{"fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr", "Réinitialiser votre mot de passe Example Mail"},
		{"en;q=0.5, de;q=0.8", "de", "Passwort"},
		{"es-ES,es;q=0.9", "nl", "herstellen"},
		{"es, EN-gb;q=0.3", "en", "Reset your Example Mail password"},
		{"de;q=0, en;q=0.1", "en", "Reset your"},
		{"fr;q=0.5, de;q=0.5", "fr", "Réinitialiser"},
		{"de;q=abc, fr;q=2, en", "en", "Reset your"},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			t.Parallel()
			b := e.browser()
			b.lang = tt.accept
			p := b.get(e.url("/"))
			p.want(t, http.StatusOK, tt.text, "Call +1 555 0100")
			if !strings.Contains(p.body, `<html lang="`+tt.lang+`">`) {
				t.Errorf("page is not marked lang=%q", tt.lang)
			}
			if got := p.Header.Get("Content-Language"); got != tt.lang {
				t.Errorf("Content-Language %q, want %q", got, tt.lang)
			}
		})
	}
}

func TestPagesSMSLinkLandsOnCodeStep(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.PublicURL = "https://mail.example.com" })
	b := e.browser()
	_, flow := e.startFlow(b, pageTestAccount)
	link := regexp.MustCompile(`https://\S+`).FindString(e.waitMessages(1)[0].Body)
	u, err := url.Parse(link)
	if err != nil || u.Path != "/recovery/" || u.Query().Get("flow") != flow {
		t.Fatalf("SMS link %q does not lead to <prefix>/?flow=%s", link, flow)
	}

	// The person opens the link on the phone: a browser without cookies.
	phone := e.browser()
	p := phone.get(e.srv.URL + u.RequestURI())
	p.want(t, http.StatusOK, "Check your phone", "Code from the text message")
	if got := p.field("flow"); got != flow {
		t.Errorf("code page carries flow %q, want %q", got, flow)
	}
	for _, attr := range []string{`autocomplete="one-time-code"`, `inputmode="numeric"`} {
		if !strings.Contains(p.body, attr) {
			t.Errorf("code field lacks %s", attr)
		}
	}
	p = phone.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {e.code(flow, 1)}})
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify from the SMS link: status %d; page:\n%s", p.StatusCode, p.text())
	}
}

func TestPagesCodeStep(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) {
		h.MaxAttempts = 3
		h.Lockout = &Threshold{Failures: 100, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(time.Hour)}
	})
	b := e.browser()
	p, flow := e.startFlow(b, pageTestAccount)
	csrf := p.field("csrf")
	code := e.code(flow, 1)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	verify := func(flow, code string) page {
		return b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "flow": {flow}, "code": {code}})
	}
	steps := []struct {
		name   string
		flow   string
		code   string
		status int
		texts  []string
	}{
		{"too short", flow, "123", http.StatusBadRequest, []string{"The code has 6 digits", "Check your phone"}},
		{"letters", flow, "12345a", http.StatusBadRequest, []string{"The code has 6 digits"}},
		{"not a flow", "<x>", code, http.StatusBadRequest, []string{"That link is incomplete", "Email address or user name"}},
		{"wrong", flow, wrong, http.StatusBadRequest, []string{"That code is not right. You can try 2 more times.", "Send a new code"}},
		{"wrong again", flow, wrong[:3] + " " + wrong[3:], http.StatusBadRequest, []string{"You can try 1 more time."}},
		{"last wrong", flow, wrong, http.StatusBadRequest, []string{"that was the last try. Start over"}},
		{"exhausted", flow, code, http.StatusGone, []string{"This code has expired", "Start over"}},
	}
	for _, s := range steps {
		p := verify(s.flow, s.code)
		p.want(t, s.status, s.texts...)
		if s.status == http.StatusBadRequest && strings.Contains(p.body, `id="code"`) {
			if !strings.Contains(p.body, `aria-invalid="true"`) || !strings.Contains(p.body, `aria-describedby="code-hint code-error"`) {
				t.Errorf("%s: the code field is not marked invalid and tied to the message", s.name)
			}
			if !strings.Contains(p.body, "<title>Error: ") {
				t.Errorf("%s: the title does not say there is an error", s.name)
			}
		}
	}

	// A flow ID that is not one, in the link, lands on the account page.
	p = b.get(e.url("/?flow=" + url.QueryEscape("../../etc")))
	p.want(t, http.StatusOK, "That link is incomplete")
	if p.field("flow") != "" {
		t.Error("a bad flow ID was carried into the page")
	}
}

func TestPagesResend(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.ResendInterval = caddy.Duration(time.Hour) })
	b := e.browser()
	p, flow := e.startFlow(b, pageTestAccount)
	p = b.post(e.url("/resend"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}})
	p.want(t, http.StatusTooManyRequests, "You can ask for a new code in 60 minutes", "Check your phone")
	if p.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if p.field("flow") != flow {
		t.Error("the code page lost its flow")
	}

	clk := clock.NewManual(time.Now())
	e = newPageEnv(t, func(h *Handler) { h.clock = clk })
	b = e.browser()
	p, flow = e.startFlow(b, pageTestAccount)
	e.code(flow, 1)
	clk.Advance(defaultResendInterval)
	p = b.post(e.url("/resend"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}})
	if want := "/recovery/?flow=" + flow + "&sent=1"; p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != want {
		t.Fatalf("resend: status %d Location %q, want 303 to %s", p.StatusCode, p.Header.Get("Location"), want)
	}
	p = b.follow(p)
	p.want(t, http.StatusOK, "A new code is on its way")
	e.verifyFlow(b, p, flow, 2).want(t, http.StatusOK, "Choose a new password")
}

func TestPagesAccountStep(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	csrf := b.get(e.url("/")).field("csrf")
	p := b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {"   "}})
	p.want(t, http.StatusBadRequest, "Enter the email address or user name of your account.")
	if !strings.Contains(p.body, `aria-describedby="account-error"`) {
		t.Error("the account field is not tied to its error")
	}
	long := strings.Repeat("a", 300) + "@example.com"
	p = b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {long}})
	p.want(t, http.StatusBadRequest)
	if p.field("account") != long {
		t.Error("the account as typed is not kept")
	}
	// An unknown account looks like a known one.
	p = b.post(e.url("/start"), url.Values{"csrf": {csrf}, "account": {"nobody@example.com"}})
	b.follow(p).want(t, http.StatusOK, "Check your phone")
}

// TestPagesAccountFromLink: a link from the webmail's login page names the
// account typed there in ?account=, and the first page starts with it
// filled in; a name the flow would refuse is not shown.
func TestPagesAccountFromLink(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	for _, c := range []struct{ query, want string }{
		{"?account=" + url.QueryEscape("alice@example.com"), "alice@example.com"},
		{"?account=" + url.QueryEscape(" Alice@Example.com "), "Alice@Example.com"},
		{"", ""},
		{"?account=" + url.QueryEscape("ali\u202ece@example.com"), ""},
		{"?account=" + url.QueryEscape(strings.Repeat("a", 300)+"@example.com"), ""},
		// Escaped as the value of the field, never markup of the page.
		{"?account=" + url.QueryEscape(`"><b>x</b>`), `"><b>x</b>`},
	} {
		p := b.get(e.url("/" + c.query))
		p.want(t, http.StatusOK, "Reset your Example Mail password")
		if got := p.field("account"); got != c.want {
			t.Errorf("GET /%s: the account field holds %q, want %q", c.query, got, c.want)
		}
		if strings.Contains(p.body, "<b>x") {
			t.Errorf("GET /%s: the account became markup of the page", c.query)
		}
	}
}

func TestPagesMalformedPosts(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	csrf := b.get(e.url("/")).field("csrf")
	raw := func(route, body string) page {
		req, err := http.NewRequest(http.MethodPost, e.url(route), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return b.do(req)
	}
	tests := []struct {
		name   string
		do     func() page
		status int
		text   string
	}{
		{"too large", func() page { return raw("/start", "csrf="+csrf+"&account="+strings.Repeat("a", 70<<10)) }, http.StatusRequestEntityTooLarge, "Something was missing"},
		{"not a form", func() page { return raw("/start", "csrf="+csrf+"&account=%zz") }, http.StatusBadRequest, "Something was missing"},
		{"resend without a flow", func() page { return b.post(e.url("/resend"), url.Values{"csrf": {csrf}}) }, http.StatusBadRequest, "That link is incomplete"},
		{"verify without a flow", func() page { return b.post(e.url("/verify"), url.Values{"csrf": {csrf}, "code": {"123456"}}) }, http.StatusBadRequest, "That link is incomplete"},
		{"resend of an unknown flow", func() page {
			return b.post(e.url("/resend"), url.Values{"csrf": {csrf}, "flow": {"AAAAAAAAAAAAAAAAAAAAAA"}})
		}, http.StatusGone, "This code has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.do().want(t, tt.status, tt.text)
		})
	}
	e.close() // drains the queue: whatever the posts queued has gone out
	if n := len(e.messages()); n != 0 {
		t.Errorf("malformed posts sent %d SMS", n)
	}
}

func TestPagesDenials(t *testing.T) {
	t.Parallel()
	t.Run("rate limited", func(t *testing.T) {
		t.Parallel()
		e := newPageEnv(t, func(h *Handler) {
			h.Limits = map[string]Limit{"start_account": {Events: 1, Window: caddy.Duration(time.Hour)}}
		})
		b := e.browser()
		e.startFlow(b, pageTestAccount)
		p := b.post(e.url("/start"), url.Values{"csrf": {b.get(e.url("/")).field("csrf")}, "account": {pageTestAccount}})
		p.want(t, http.StatusTooManyRequests, "Please wait a moment", "try again in 60 minutes", "Start over")
		if p.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	})
	t.Run("locked", func(t *testing.T) {
		t.Parallel()
		e := newPageEnv(t, func(h *Handler) {
			h.Lockout = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(30 * time.Minute)}
		})
		b := e.browser()
		p, flow := e.startFlow(b, pageTestAccount)
		wrong := "000000"
		if e.code(flow, 1) == wrong {
			wrong = "111111"
		}
		for range 2 {
			p = b.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {wrong}})
		}
		p.want(t, http.StatusLocked, "Recovery is paused for this account", "mailbox and your messages are not affected",
			"try again in 30 minutes", "Need help now? Call +1 555 0100")
		if got, err := strconv.Atoi(p.Header.Get("Retry-After")); err != nil || got < 1 || got > 1800 {
			t.Errorf("Retry-After %q, want 1..1800", p.Header.Get("Retry-After"))
		}
	})
	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		e := newPageEnv(t, func(h *Handler) {
			h.IPBlock = &Threshold{Failures: 1, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(2 * time.Hour)}
		})
		b := e.browser()
		b.lang = "de"
		p, flow := e.startFlow(b, pageTestAccount)
		wrong := "000000"
		if e.code(flow, 1) == wrong {
			wrong = "111111"
		}
		p = b.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {wrong}})
		p.want(t, http.StatusForbidden, "Zu viele falsche Codes aus Ihrem Netzwerk", "in 2 Stunden", "mobile Daten")
	})
}

func TestPagesPasswordStep(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.PasswordMinLength = 16 })
	b := e.browser()
	p, flow := e.startFlow(b, pageTestAccount)
	csrf := p.field("csrf")
	p = e.verifyFlow(b, p, flow, 1)
	p.want(t, http.StatusOK, "At least 16 characters")
	for _, attr := range []string{`autocomplete="new-password"`, `minlength="16"`, `for="password"`, `for="password-again"`} {
		if strings.Count(p.body, attr) == 0 {
			t.Errorf("password form lacks %s", attr)
		}
	}
	tests := []struct {
		name, password, again string
		text                  string
	}{
		{"mismatch", "sixteen chars ok!", "sixteen chars ok?", "The two passwords are not the same"},
		{"short", "fifteen chars!!", "fifteen chars!!", "too short. Use at least 16 characters"},
		{"short in bytes only", "ääääääääääääää", "ääääääääääääää", "too short"},
		{"empty", "", "", "too short"},
	}
	for _, tt := range tests {
		p := b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {tt.password}, "password_again": {tt.again}})
		p.want(t, http.StatusBadRequest, tt.text, "Choose a new password")
		if strings.Contains(p.body, tt.password) && tt.password != "" {
			t.Errorf("%s: the page echoes the password", tt.name)
		}
	}
	if n := len(e.upstream.got()); n != 0 {
		t.Fatalf("upstream got %d resets for refused passwords", n)
	}
	p = b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}})
	p.want(t, http.StatusOK, "Your password has been changed")
}

func TestPagesUpstreamOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		err    error
		want   int
		texts  []string
	}{
		{"refuses the password", http.StatusUnprocessableEntity, nil, http.StatusUnprocessableEntity, []string{"did not accept this password", "Choose a new password"}},
		{"bad request", http.StatusBadRequest, nil, http.StatusBadRequest, []string{"did not accept this password"}},
		{"fails", http.StatusInternalServerError, nil, http.StatusBadGateway, []string{"The mail service is not answering", "has not been changed yet", "Try again"}},
		{"redirects", http.StatusFound, nil, http.StatusBadGateway, []string{"not answering"}},
		{"unreachable", 0, caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused")), http.StatusBadGateway, []string{"not answering"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, nil)
			b := e.browser()
			p, flow := e.startFlow(b, pageTestAccount)
			csrf := p.field("csrf")
			e.verifyFlow(b, p, flow, 1)
			e.upstream.answer(tt.status, tt.err)
			form := url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}}
			p = b.post(e.url("/reset"), form)
			p.want(t, tt.want, tt.texts...)
			if tt.want == http.StatusBadGateway && !strings.Contains(p.body, `href="/recovery/?step=password"`) {
				t.Error("the upstream page does not lead back to the password step")
			}
			// The token was not spent: the next try goes through.
			e.upstream.answer(0, nil)
			b.post(e.url("/reset"), form).want(t, http.StatusOK, "Your password has been changed")
		})
	}
}

// TestJSONResetUnchanged checks that the reset of the JSON API still
// streams the upstream's answer and keeps its errors.
func TestJSONResetUnchanged(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	post := func(route, body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, err := http.Post(e.url(route), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: body is not JSON: %v", route, err)
		}
		return resp, m
	}
	resp, m := post("/start", `{"account":"alice@example.com"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d %v", resp.StatusCode, m)
	}
	flow := m["flow"].(string)
	resp, m = post("/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, e.code(flow, 1)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %v", resp.StatusCode, m)
	}
	token := m["reset_token"].(string)
	body := fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret!"}`, token)

	e.upstream.answer(0, caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused")))
	resp, m = post("/reset", body)
	if resp.StatusCode != http.StatusBadGateway || m["error"] != "upstream_unavailable" {
		t.Fatalf("reset with the upstream down: %d %v, want 502 upstream_unavailable", resp.StatusCode, m)
	}
	e.upstream.answer(http.StatusCreated, nil)
	resp, m = post("/reset", body)
	if resp.StatusCode != http.StatusCreated || m["status"] != float64(http.StatusCreated) {
		t.Fatalf("reset: %d %v, want the upstream's own 201 answer", resp.StatusCode, m)
	}
	if got := e.upstream.got(); len(got) != 1 || got[0].Body != `{"password":"N3w-s3cret!"}` || got[0].ContentType != "application/json" {
		t.Errorf("upstream got %+v", got)
	}
	resp, m = post("/reset", body)
	if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_token" {
		t.Errorf("spent token: %d %v, want 401 invalid_token", resp.StatusCode, m)
	}
}

// TestFormResetWithTokenInBody checks the form reset of SPEC §6: a client
// of the API that sends its token in a form body gets the JSON API's
// reset, with the token taken out and the other fields passed on.
func TestFormResetWithTokenInBody(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	resp, err := http.Post(e.url("/start"), "application/json", strings.NewReader(`{"account":"alice@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	var started struct{ Flow string }
	err = json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(e.url("/verify"), "application/json",
		strings.NewReader(fmt.Sprintf(`{"flow":%q,"code":%q}`, started.Flow, e.code(started.Flow, 1))))
	if err != nil {
		t.Fatal(err)
	}
	var verified struct {
		ResetToken string `json:"reset_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&verified)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	e.upstream.answer(http.StatusCreated, nil)
	form := url.Values{"reset_token": {verified.ResetToken}, "password": {"N3w-s3cret!"}, "lang": {"nl"}}
	b := e.browser()
	p := b.post(e.url("/reset"), form)
	if p.StatusCode != http.StatusCreated || p.body != `{"status":201}` {
		t.Fatalf("form reset: %d %q, want the upstream's own 201 answer", p.StatusCode, p.body)
	}
	got := e.upstream.got()
	want := upstreamReset{Account: pageTestAccount, Body: "lang=nl&password=N3w-s3cret%21", ContentType: "application/x-www-form-urlencoded"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("upstream got %+v, want %+v", got, want)
	}
	p = b.post(e.url("/reset"), form)
	if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.body, `"error":"invalid_token"`) {
		t.Errorf("spent token: %d %q, want 401 invalid_token", p.StatusCode, p.body)
	}
}

func TestPagesForwardDropsOwnCookies(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	site, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b.c.Jar.SetCookies(site, []*http.Cookie{{Name: "webmail_session", Value: "s1", Path: "/"}})
	p, flow := e.startFlow(b, pageTestAccount)
	csrf := p.field("csrf")
	e.verifyFlow(b, p, flow, 1)
	b.post(e.url("/reset"), url.Values{"csrf": {csrf}, "password": {pageTestPassword}, "password_again": {pageTestPassword}}).want(t, http.StatusOK)
	got := e.upstream.got()
	if len(got) != 1 || got[0].Cookie != "webmail_session=s1" {
		t.Errorf("upstream got cookies %+v, want only the webmail's own", got)
	}
}

func TestPagesHeadAndMethods(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	resp, err := http.Head(e.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") == "" || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %d, CSP %q, length %d", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), resp.ContentLength)
	}
	resp, err = http.Get(e.srv.URL + "/recovery?flow=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.RequestURI() != "/recovery/?flow=abc" {
		t.Errorf("GET /recovery?flow=abc ended at %s, want /recovery/?flow=abc", resp.Request.URL.RequestURI())
	}
}

func TestPagesCSRFRandomnessFails(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.h.pageRand = iotest.ErrReader(errors.New("no entropy"))
	p := e.browser().get(e.url("/"))
	if p.StatusCode != http.StatusInternalServerError || cookieNamed(p.Cookies(), csrfCookie) != nil {
		t.Errorf("status %d with cookies %v, want 500 and no CSRF cookie", p.StatusCode, p.Cookies())
	}
}

func TestPagesStylesheet(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	b := e.browser()
	p := b.get(e.url("/"))
	href := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)">`).FindStringSubmatch(p.body)
	if href == nil {
		t.Fatal("no stylesheet link")
	}
	tests := []struct {
		name, path, cache string
	}{
		{"current", html.UnescapeString(href[1]), "public, max-age=31536000, immutable"},
		{"old version", "/recovery/?style=0123", "no-cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := b.get(e.srv.URL + tt.path)
			if p.StatusCode != http.StatusOK || p.Header.Get("Content-Type") != "text/css; charset=utf-8" {
				t.Fatalf("%s: %d %s", tt.path, p.StatusCode, p.Header.Get("Content-Type"))
			}
			if got := p.Header.Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control %q, want %q", got, tt.cache)
			}
			if p.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(p.body, "prefers-color-scheme") {
				t.Error("not the stylesheet, or sniffable")
			}
			if len(p.body) > 8<<10 {
				t.Errorf("stylesheet has %d bytes; keep it small", len(p.body))
			}
		})
	}
}

func TestPagesTemplates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
		check   func(t *testing.T, e *pageEnv)
	}{
		{
			name:  "replaces a page",
			files: map[string]string{"account.html": `{{define "title"}}Own{{end}}{{define "content"}}<h1>Own page of {{.SiteName}}</h1><form method="post" action="{{.Prefix}}/start"><input type="hidden" name="csrf" value="{{.CSRF}}"></form>{{end}}`},
			check: func(t *testing.T, e *pageEnv) {
				p := e.browser().get(e.url("/"))
				p.want(t, http.StatusOK, "Own page of Example Mail")
				if !strings.Contains(p.body, "<title>Own – Example Mail</title>") {
					t.Error("the built-in layout is not used around the replaced page")
				}
				e.browser().get(e.url("/?flow=AAAAAAAAAAAAAAAAAAAAAA")).want(t, http.StatusOK, "Check your phone")
			},
		},
		{
			name:  "replaces the layout",
			files: map[string]string{"layout.html": `<!doctype html><html lang="{{.Lang}}"><title>{{template "title" .}}</title><main>{{template "content" .}}</main><p>Operated by Example</p></html>`},
			check: func(t *testing.T, e *pageEnv) {
				e.browser().get(e.url("/")).want(t, http.StatusOK, "Operated by Example", "Reset your Example Mail password")
			},
		},
		{name: "unknown file", files: map[string]string{"acount.html": "x"}, wantErr: "acount.html does not replace a built-in template"},
		{name: "does not parse", files: map[string]string{"done.html": `{{define "content"}}{{if}}{{end}}`}, wantErr: "templates:"},
		{name: "unknown text", files: map[string]string{"done.html": `{{define "title"}}x{{end}}{{define "content"}}{{.T "done.nothing"}}{{end}}`}, wantErr: `done.html in "`},
		{name: "unknown field", files: map[string]string{"code.html": `{{define "title"}}x{{end}}{{define "content"}}{{.Password}}{{end}}`}, wantErr: "code.html"},
		{name: "missing directory", wantErr: "templates:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "templates")
			if tt.files != nil {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			for name, src := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wantErr != "" {
				h := &Handler{Templates: dir, Language: "en"}
				err := h.provisionPages()
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("provisionPages: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			tt.check(t, newPageEnv(t, func(h *Handler) { h.Templates = dir }))
		})
	}
}

func TestProvisionPagesRefusesUnknownLanguage(t *testing.T) {
	t.Parallel()
	h := &Handler{Language: "es"}
	if err := h.provisionPages(); err == nil || !strings.Contains(err.Error(), `language: no page texts for "es"`) {
		t.Errorf("provisionPages: %v, want a language error", err)
	}
}

func TestPagesPrefixRoot(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(h *Handler) { h.PathPrefix = "/" })
	b := e.browser()
	p := b.get(e.srv.URL + "/")
	p.want(t, http.StatusOK, "Reset your")
	if !strings.Contains(p.body, `action="/start"`) || !strings.Contains(p.body, `href="/?style=`) {
		t.Error("forms and stylesheet do not sit at the root")
	}
	if c := cookieNamed(p.Cookies(), csrfCookie); c == nil || c.Path != "/" {
		t.Errorf("CSRF cookie %v, want Path=/", c)
	}
}

func TestCompactCode(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"123456":       "123456",
		" 123 456 ":    "123456",
		"123-456":      "123456",
		"123\u00a0456": "123456",
		"12345a":       "12345a",
	}
	for in, want := range tests {
		if got := compactCode(in); got != want {
			t.Errorf("compactCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDropCookies(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"smsrec_csrf=a; smsrec_reset=b", ""},
		{"a=1; smsrec_reset=b; c=2", "a=1; c=2"},
		{"smsrec_csrf=a", ""},
		{"__Host-smsrec_csrf=a; b=2; __Host-smsrec_reset=c", "b=2"},
		{"__Host-other=a; smsrec_reset=b", "__Host-other=a"},
	}
	for _, tt := range tests {
		hdr := http.Header{}
		if tt.in != "" {
			hdr.Set("Cookie", tt.in)
		}
		dropCookies(hdr, ownCookies...)
		if got := hdr.Get("Cookie"); got != tt.want {
			t.Errorf("dropCookies(%q) left %q, want %q", tt.in, got, tt.want)
		}
	}
}
