package integration

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

// The ports of the Caddy under test, free ones chosen by TestMain, and the
// URLs of its gateway site and its admin endpoint.
var (
	httpPort, httpsPort, adminPort int
	gateway, admin                 string
)

const (
	keyID    = "gw1"
	alice    = "alice@example.com"
	phoneNL  = "+31612345678"
	password = `{"password":"N3w-s3cret-passw0rd!"}`
)

// hmacKey is a test-only forward key.
var hmacKey = bytes.Repeat([]byte{0x5a}, 64)

// upstream is a stand-in for the legacy mail service: it checks the
// gateway's signature on every reset and counts what reached it.
type upstream struct {
	t        *testing.T
	srv      *http.Server
	addr     string
	verifier *httpsig.Verifier
	status   int

	mu      sync.Mutex
	resets  []received
	plain   []http.Header
	rejects int
}

type received struct {
	account    string
	path       string
	query      string // the raw query string, which nothing signs
	requestURI string
	body       string
	header     http.Header
}

// startUpstream listens on addr ("127.0.0.1:0" for any port).
func startUpstream(t *testing.T, addr string) *upstream {
	t.Helper()
	v, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: keyID, HMACKey: hmacKey})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, addr: ln.Addr().String(), verifier: v, status: http.StatusOK}
	u.srv = &http.Server{Handler: u}
	go u.srv.Serve(ln)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.URL.Path != "/api/reset-password" {
		u.plain = append(u.plain, r.Header.Clone())
		fmt.Fprint(w, "webmail")
		return
	}
	account, err := u.verifier.Verify(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), body, time.Now())
	if err != nil {
		u.rejects++
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	u.resets = append(u.resets, received{account: account, path: r.URL.Path, query: r.URL.RawQuery,
		requestURI: r.RequestURI, body: string(body), header: r.Header.Clone()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(u.status)
	fmt.Fprintf(w, `{"changed":%q}`, account)
}

func (u *upstream) got() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.resets...)
}

// site is the Caddyfile of a test: the gateway in front of an upstream.
type site struct {
	// Address is the site address. Default: gateway, from
	// which public_url follows unless PublicURL is set.
	Address   string
	PublicURL string
	Upstream  string // host:port of the upstream
	Outbox    string
	Extra     string // more sms_recovery subdirectives
	SiteName  string
	// SMS replaces the outbox sender, e.g. with an sms messagebird block.
	SMS string
	// Forward adds forward subdirectives, e.g. fields.
	Forward string
	// Global adds global options.
	Global string
	// Store names the memory store: flows, counters and locks outlive a
	// config in this process, so each test gets a store of its own.
	Store int
	// Storage replaces the memory storage block, e.g. with storage redis.
	Storage string
	// Phones replaces the phone directory, a JSON object. Default: alice
	// and bob.
	Phones string
	// Directory, when set, replaces the "directory file ..." line, e.g.
	// with a directory ldap or sql block; Phones is then unused.
	Directory string
	// Site adds site directives after the gateway's, e.g. handle_errors.
	Site string
}

var stores atomic.Int64

func (s site) caddyfile(t *testing.T) string {
	t.Helper()
	phones := filepath.Join(t.TempDir(), "phones.json")
	directory := cmp.Or(s.Phones, `{"alice@example.com": "+31612345678", "bob@example.com": {"phone": "+4915123456789", "lang": "de"}}`)
	if err := os.WriteFile(phones, []byte(directory), 0o600); err != nil {
		t.Fatal(err)
	}
	sms := s.SMS
	if sms == "" {
		sms = "sms outbox " + s.Outbox
	}
	name := s.SiteName
	if name == "" {
		name = "Example Mail"
	}
	dirLine := cmp.Or(s.Directory, "directory file "+phones)
	storage := s.Storage
	if storage == "" {
		storage = fmt.Sprintf("storage memory {\n\t\t\tmax_entries %d\n\t\t}", s.Store)
	}
	address := s.Address
	if address == "" {
		address = gateway
	}
	publicURL := ""
	if s.PublicURL != "" {
		publicURL = "public_url " + s.PublicURL
	}
	global := s.Global
	if !strings.Contains(global, "log {") {
		global += fmt.Sprintf("\n\tlog {\n\t\toutput file %s {\n\t\t\troll_disabled\n\t\t}\n\t\tformat json\n\t}", runLog)
	}
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
	metrics
	%s
}
%s {
	sms_recovery {
		site_name %q
		%s
		%s
		%s
		support "Call +1 555 0100"
		%s
		%s
		forward {
			path /api/reset-password
			key_id %s
			hmac_key %s
			%s
		}
	}
	respond /health "ok" 200
	reverse_proxy %s
	%s
}
`, adminPort, httpPort, httpsPort, global, address, name, publicURL, dirLine, sms, storage, s.Extra, keyID, base64.StdEncoding.EncodeToString(hmacKey), s.Forward, s.Upstream, s.Site)
}

// config adapts s's Caddyfile to JSON, as Caddy's /load does, and
// subscribes smsSignal to the gateway's delivery events, so that a test
// waiting for an SMS wakes when one is written, and reportSignal to its
// delivery reports.
func (s site) config(t *testing.T) ([]byte, error) {
	t.Helper()
	raw, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(s.caddyfile(t)), nil)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	apps, _ := cfg["apps"].(map[string]any)
	if apps == nil {
		return nil, fmt.Errorf("adapted config has no apps: %s", raw)
	}
	apps["events"] = map[string]any{"subscriptions": []any{map[string]any{
		"events":   smsOutcomeEvents,
		"handlers": []any{map[string]any{"handler": smsSignalHandler}},
	}, map[string]any{
		"events":   []string{module.EventDeliveryReport},
		"handlers": []any{map[string]any{"handler": reportSignalHandler}},
	}}}
	return json.Marshal(cfg)
}

// start loads a gateway site and returns a client for it. It fills in s.
func start(t *testing.T, s *site) *client {
	t.Helper()
	if s.Store == 0 {
		s.Store = 100_000 + int(stores.Add(1))
	}
	if s.Outbox == "" {
		s.Outbox = newOutbox(t)
	}
	cfg, err := s.config(t)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	showLogOnFailure(t)
	// caddytest waits 5s for a config to load and for an answer: a loaded
	// 2-core machine running the race detector can take longer to open a
	// store and provision the handler. These bounds only end a stuck test.
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort,
		LoadRequestTimeout: time.Minute, TestRequestTimeout: time.Minute})
	tester.InitServer(string(cfg), "json")
	if t.Failed() {
		t.FailNow()
	}
	return &client{t: t, http: tester.Client, outbox: s.Outbox}
}

// failed names the tests with a gateway that failed, for the run's last line.
var (
	failedMu sync.Mutex
	failed   []string
)

// showLogOnFailure has t, if it fails, show the last lines of the gateway's
// log written since now.
func showLogOnFailure(t *testing.T) {
	t.Helper()
	var from int64
	if fi, err := os.Stat(runLog); err == nil {
		from = fi.Size()
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		failedMu.Lock()
		failed = append(failed, t.Name())
		failedMu.Unlock()
		f, err := os.Open(runLog)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return
		}
		const keep = 10
		var last []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			last = append(last, sc.Text())
			if len(last) > keep {
				last = last[1:]
			}
		}
		t.Logf("the gateway's last %d log lines during this test (all in %s while the run lasts):\n%s",
			len(last), runLog, strings.Join(last, "\n"))
	})
}

// reload loads s into the running Caddy, as `caddy reload` does.
func reload(t *testing.T, s site) {
	t.Helper()
	if err := load(t, s); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// load loads s into the running Caddy and returns why Caddy refused it, if
// it did; then the config before it keeps running.
func load(t *testing.T, s site) error {
	t.Helper()
	cfg, err := s.config(t)
	if err != nil {
		return err // Caddy would refuse it just the same
	}
	req, _ := http.NewRequest(http.MethodPost, admin+"/load", bytes.NewReader(cfg))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%d %s", res.StatusCode, b)
	}
	return nil
}

type client struct {
	t      *testing.T
	http   *http.Client
	outbox string
}

// answer is a JSON answer of the API.
type answer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (a answer) str(key string) string { s, _ := a.Body[key].(string); return s }
func (a answer) num(key string) float64 {
	n, _ := a.Body[key].(float64)
	return n
}

// post sends a JSON body and decodes the JSON answer.
func (c *client) post(path, body string, headers ...string) answer {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, gateway+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Body)
	return a
}

func (c *client) startFlow(account string) string {
	c.t.Helper()
	a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, account))
	if a.Status != http.StatusAccepted || a.str("flow") == "" {
		c.t.Fatalf("start: %d %s", a.Status, a.Raw)
	}
	return a.str("flow")
}

// reset verifies flow with the nth code the outbox holds and resets the
// password with the token, failing the test unless the gateway changed
// account.
func (c *client) reset(flow string, n int, account string) {
	c.t.Helper()
	a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, c.codeFor(n)))
	if a.Status != http.StatusOK || a.str("reset_token") == "" {
		c.t.Fatalf("verify: %d %s", a.Status, a.Raw)
	}
	a = c.post("/recovery/reset", fmt.Sprintf(`{"reset_token":%q,"password":"N3w-s3cret-passw0rd!"}`, a.str("reset_token")))
	if a.Status != http.StatusOK || a.str("changed") != account {
		c.t.Fatalf("reset: %d %s", a.Status, a.Raw)
	}
}

var codeLine = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)

// outboxLine is one message the outbox sender wrote.
type outboxLine struct {
	To   string    `json:"to"`
	Body string    `json:"body"`
	Time time.Time `json:"time"`
}

// messages reads the outbox, waiting up to 30 seconds for want lines,
// since SMS go out in the background: it reads again at each SMS outcome
// the gateway reports, never on a timer.
func (c *client) messages(want int) []outboxLine {
	c.t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		written := delivered.Next() // before reading, so no line slips between
		var lines []outboxLine
		if f, err := os.Open(c.outbox); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l outboxLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					c.t.Fatalf("outbox line %q: %v", sc.Text(), err)
				}
				lines = append(lines, l)
			}
			f.Close()
		}
		if len(lines) >= want {
			return lines
		}
		select {
		case <-written:
		case <-timeout.C:
			return lines
		}
	}
}

// codeFor waits for the n-th message (1-based) and returns its code.
func (c *client) codeFor(n int) string {
	c.t.Helper()
	msgs := c.messages(n)
	if len(msgs) < n {
		c.t.Fatalf("outbox has %d messages, want %d", len(msgs), n)
	}
	m := codeLine.FindStringSubmatch(msgs[n-1].Body)
	if m == nil {
		c.t.Fatalf("no code line in %q", msgs[n-1].Body)
	}
	return m[1]
}

// codeForFlow waits for the SMS of flow and returns its code. SMS go out
// from parallel workers, so another message queued about the same time (a
// reset notice, say) may be written before or after it.
func (c *client) codeForFlow(flow string) (to, code string) {
	c.t.Helper()
	for want := 1; ; want++ {
		msgs := c.messages(want)
		for _, m := range msgs {
			if strings.Contains(m.Body, "flow="+flow) {
				if sub := codeLine.FindStringSubmatch(m.Body); sub != nil {
					return m.To, sub[1]
				}
			}
		}
		if len(msgs) < want {
			c.t.Fatalf("no SMS for flow %s in the outbox: %+v", flow, msgs)
		}
	}
}

// codeOf waits for the SMS that links to flow and returns its code.
func (c *client) codeOf(flow string) string {
	c.t.Helper()
	_, code := c.codeForFlow(flow)
	return code
}

// noticeAfterCode waits for the outbox to hold two messages, a code and a
// notice, and returns the notice. Workers deliver in parallel: the notice
// may be written before the code.
func (c *client) noticeAfterCode() outboxLine {
	c.t.Helper()
	msgs := c.messages(2)
	if len(msgs) != 2 {
		c.t.Fatalf("outbox has %d messages, want the code and one notice", len(msgs))
	}
	if codeLine.MatchString(msgs[1].Body) {
		return msgs[0]
	}
	return msgs[1]
}

func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}
