package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/tcpproxy"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

// served is what a request through serveCaddy got: the answer, the
// replacer of its context and what ServeHTTP returned.
type served struct {
	rec    *httptest.ResponseRecorder
	status int // the recorder's, or the HandlerError's when one was returned
	header http.Header
	body   string
	repl   *caddy.Replacer
	err    error
}

// placeholder returns the value of a placeholder the handler set, and
// whether it set it.
func (s served) placeholder(name string) (string, bool) {
	v, ok := s.repl.Get(name)
	if !ok {
		return "", false
	}
	str, _ := v.(string)
	return str, true
}

// serveCaddy sends a request to a recovery route of g as Caddy's server
// hands it over: with a replacer in its context, the client IP among its
// vars. A HandlerError it returns stands for the status Caddy would answer.
func (g *opsGateway) serveCaddy(method, route, ip string, body map[string]string) served {
	g.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			g.t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, "https://"+opsHost+"/recovery"+route, bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, nil)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
	err := g.h.ServeHTTP(w, r, g.upstream)
	s := served{rec: w, status: w.Code, header: w.Header(), body: w.Body.String(), repl: repl, err: err}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		s.status = he.StatusCode
	} else if err != nil {
		g.t.Fatalf("%s %s: %v", method, route, err)
	}
	return s
}

// refusalCase is one kind of refusal: how to bring it about on a gateway,
// and what the answer and its placeholders must be.
type refusalCase struct {
	name      string
	configure func(*Handler)
	provoke   func(t *testing.T, g *opsGateway) served // the refused request
	status    int
	code      string
	scope     string
	retry     bool // a Retry-After and the retry_after placeholder
}

// refusals are the kinds of refusal; nowhere is the address of a Redis that
// never answers.
func refusals(nowhere string) []refusalCase {
	return []refusalCase{
		{
			name: "429 over a limit",
			configure: func(h *Handler) {
				h.Limits["start_account"] = Limit{Events: 1, Window: caddy.Duration(time.Hour)}
			},
			provoke: func(t *testing.T, g *opsGateway) served {
				g.start("refused-429@example.com", "192.0.2.90")
				return g.serveCaddy(http.MethodPost, "/start", "192.0.2.90", map[string]string{"account": "refused-429@example.com"})
			},
			status: http.StatusTooManyRequests, code: "rate_limited", scope: "start_account", retry: true,
		},
		{
			name: "423 locked",
			configure: func(h *Handler) {
				h.Lockout = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(time.Hour)}
			},
			provoke: func(t *testing.T, g *opsGateway) served {
				const account, ip = "refused-423@example.com", "192.0.2.91"
				flow := g.start(account, ip)
				wrong := wrongCode(g.code(flow))
				for range 2 {
					g.serveCaddy(http.MethodPost, "/verify", ip, map[string]string{"flow": flow, "code": wrong})
				}
				return g.serveCaddy(http.MethodPost, "/start", "192.0.2.191", map[string]string{"account": account})
			},
			status: http.StatusLocked, code: "account_locked", scope: "lockout", retry: true,
		},
		{
			name: "403 blocked",
			configure: func(h *Handler) {
				h.IPBlock = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(time.Hour)}
			},
			provoke: func(t *testing.T, g *opsGateway) served {
				const ip = "192.0.2.92"
				flow := g.start("refused-403@example.com", ip)
				wrong := wrongCode(g.code(flow))
				for range 2 {
					g.serveCaddy(http.MethodPost, "/verify", ip, map[string]string{"flow": flow, "code": wrong})
				}
				return g.serveCaddy(http.MethodPost, "/start", ip, map[string]string{"account": "refused-403@example.com"})
			},
			status: http.StatusForbidden, code: "ip_blocked", scope: "ip_block", retry: true,
		},
		{
			name: "410 unknown flow",
			provoke: func(t *testing.T, g *opsGateway) served {
				return g.serveCaddy(http.MethodPost, "/verify", "192.0.2.93", map[string]string{"flow": strings.Repeat("A", 22), "code": "123456"})
			},
			status: http.StatusGone, code: "expired",
		},
		{
			name: "503 storage unreachable",
			configure: func(h *Handler) {
				h.StorageRaw = guest(&redisstore.Store{URL: "redis://" + nowhere + "/0"}, "backend")
			},
			provoke: func(t *testing.T, g *opsGateway) served {
				return g.serveCaddy(http.MethodPost, "/start", "192.0.2.94", map[string]string{"account": "refused-503@example.com"})
			},
			status: http.StatusServiceUnavailable, code: "unavailable", retry: true,
		},
		{
			name: "400 wrong code",
			provoke: func(t *testing.T, g *opsGateway) served {
				flow := g.start("refused-400@example.com", "192.0.2.95")
				return g.serveCaddy(http.MethodPost, "/verify", "192.0.2.95", map[string]string{"flow": flow, "code": wrongCode(g.code(flow))})
			},
			status: http.StatusBadRequest, code: "invalid_code",
		},
		{
			name: "405 wrong method",
			provoke: func(t *testing.T, g *opsGateway) served {
				return g.serveCaddy(http.MethodGet, "/start", "192.0.2.96", nil)
			},
			status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		},
	}
}

// TestRefusalPlaceholders sets off each kind of refusal, with and without
// handle_errors, and checks the placeholders the handler leaves for the
// site, and the answer: the JSON body of SPEC §4 by default, with the
// error handler returning nothing; with handle_errors, a HandlerError of
// the status and nothing written but the headers, Retry-After among them.
func TestRefusalPlaceholders(t *testing.T) {
	t.Parallel()
	nowhere := tcpproxy.Start(t, "127.0.0.1:1")
	nowhere.Cut()
	for _, rf := range refusals(nowhere.Addr()) {
		for _, handleErrors := range []bool{false, true} {
			name := rf.name
			if handleErrors {
				name += ", handle_errors"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				g := newOpsGateway(t, map[string]string{
					"refused-423@example.com": "+31612345691", "refused-403@example.com": "+31612345692",
					"refused-400@example.com": "+31612345695",
				}, func(h *Handler) {
					if rf.configure != nil {
						rf.configure(h)
					}
					h.HandleErrors = handleErrors
				})
				s := rf.provoke(t, g)
				if s.status != rf.status {
					t.Fatalf("status %d %s, want %d", s.status, s.body, rf.status)
				}
				retryAfter := s.header.Get("Retry-After")
				if rf.retry != (retryAfter != "") {
					t.Errorf("Retry-After %q", retryAfter)
				}
				for _, p := range []struct{ name, want string }{
					{"http.sms_recovery.error", rf.code},
					{"http.sms_recovery.retry_after", retryAfter},
					{"http.sms_recovery.scope", rf.scope},
				} {
					if got, ok := s.placeholder(p.name); !ok || got != p.want {
						t.Errorf("{%s} = %q (set: %v), want %q", p.name, got, ok, p.want)
					}
				}

				if !handleErrors {
					var body struct {
						Error      string `json:"error"`
						RetryAfter *int64 `json:"retry_after"`
					}
					if s.err != nil || json.Unmarshal([]byte(s.body), &body) != nil || body.Error != rf.code ||
						!strings.HasPrefix(s.header.Get("Content-Type"), "application/json") {
						t.Errorf("answer %v %q (Content-Type %q), want the JSON body of %s", s.err, s.body, s.header.Get("Content-Type"), rf.code)
					}
					return
				}
				var he caddyhttp.HandlerError
				if !errors.As(s.err, &he) || he.StatusCode != rf.status {
					t.Fatalf("ServeHTTP returned %v, want a HandlerError of %d", s.err, rf.status)
				}
				if s.body != "" || s.header.Get("Content-Type") != "" {
					t.Errorf("wrote %q (Content-Type %q): the site's error routes answer", s.body, s.header.Get("Content-Type"))
				}
				if rf.status == http.StatusMethodNotAllowed && s.header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			})
		}
	}
}

// caddyPages serves e's pages as Caddy's server would, with a replacer in
// each request's context, and keeps the refusal placeholders of the last
// request. handle_errors, when set, must not change the pages' answers.
type caddyPages struct {
	mu   sync.Mutex
	last map[string]string
}

func (c *caddyPages) placeholders() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func newCaddyPages(t *testing.T, e *pageEnv) *caddyPages {
	t.Helper()
	c := &caddyPages{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = caddyhttp.PrepareRequest(r, repl, w, nil)
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
		err := e.h.ServeHTTP(w, r, e.upstream)
		got := map[string]string{}
		for _, name := range []string{"http.sms_recovery.error", "http.sms_recovery.retry_after", "http.sms_recovery.scope"} {
			if v, ok := repl.GetString(name); ok {
				got[name] = v
			}
		}
		c.mu.Lock()
		c.last = got
		c.mu.Unlock()
		if err != nil {
			t.Errorf("%s %s returned %v: the pages answer their own refusals", r.Method, r.URL, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	e.srv = srv // e.url now leads here
	return c
}

// TestPagesRefusalPlaceholders: the pages set the placeholders of a
// refusal as the JSON API does, and keep answering their own problem page
// with handle_errors on.
func TestPagesRefusalPlaceholders(t *testing.T) {
	t.Parallel()
	for _, handleErrors := range []bool{false, true} {
		t.Run(fmt.Sprintf("handle_errors %v", handleErrors), func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, func(h *Handler) {
				h.Lockout = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(30 * time.Minute)}
				h.HandleErrors = handleErrors
			})
			c := newCaddyPages(t, e)
			b := e.browser()
			p, flow := e.startFlow(b, pageTestAccount)
			wrong := wrongCode(e.code(flow, 1))

			p = b.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {wrong}})
			p.want(t, http.StatusBadRequest)
			want := map[string]string{"http.sms_recovery.error": "invalid_code", "http.sms_recovery.retry_after": "", "http.sms_recovery.scope": ""}
			if got := c.placeholders(); !maps.Equal(got, want) {
				t.Errorf("wrong code: placeholders %v, want %v", got, want)
			}

			p = b.post(e.url("/verify"), url.Values{"csrf": {p.field("csrf")}, "flow": {flow}, "code": {wrong}})
			p.want(t, http.StatusLocked, "Recovery is paused for this account")
			want = map[string]string{"http.sms_recovery.error": "account_locked", "http.sms_recovery.retry_after": p.Header.Get("Retry-After"), "http.sms_recovery.scope": "lockout"}
			if got := c.placeholders(); !maps.Equal(got, want) || want["http.sms_recovery.retry_after"] == "" {
				t.Errorf("lock: placeholders %v, want %v", got, want)
			}

			p = b.post(e.url("/start"), url.Values{"csrf": {"forged"}, "account": {pageTestAccount}})
			p.want(t, http.StatusForbidden)
			want = map[string]string{"http.sms_recovery.error": "csrf", "http.sms_recovery.retry_after": "", "http.sms_recovery.scope": ""}
			if got := c.placeholders(); !maps.Equal(got, want) {
				t.Errorf("forged post: placeholders %v, want %v", got, want)
			}
		})
	}
}
