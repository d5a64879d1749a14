package module

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// The operator tests (admin, logs, metrics) share the harness below: a fully
// provisioned gateway whose logs, Caddy events and upstream are captured.

// opsHost is the host of the gateway's public URL.
const opsHost = "mail.example.com"

// opsAdminIP is the address admin API requests come from.
const opsAdminIP = "192.0.2.250"

var (
	opsSecret  = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))
	opsHMACKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x17}, 64))
	// opsSeq numbers gateways, so that each gets a site name and a memory
	// store of its own while the tests run in parallel.
	opsSeq atomic.Int64
)

// opsGateway is a provisioned gateway handler under test.
type opsGateway struct {
	t        *testing.T
	h        *Handler
	ctx      caddy.Context
	outbox   string
	logs     *zapobs.ObservedLogs
	events   *opsEvents
	upstream *opsUpstream
	close    func()
}

// newOpsGateway provisions a gateway whose directory holds phones (account
// to number), that texts through an outbox file, and whose limits are high
// enough not to matter unless configure lowers them.
func newOpsGateway(t *testing.T, phones map[string]string, configure func(*Handler)) *opsGateway {
	t.Helper()
	n := opsSeq.Add(1)
	dir := t.TempDir()
	phonesJSON, err := json.Marshal(phones)
	if err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(dir, "outbox.jsonl")
	dirFile := filepath.Join(dir, "phones.json")
	if err := os.WriteFile(dirFile, phonesJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	high := Limit{Events: 1000, Window: caddy.Duration(time.Hour)}
	h := &Handler{
		SiteName:     fmt.Sprintf("Ops Mail %d", n),
		PublicURL:    "https://" + opsHost,
		DirectoryRaw: fileDirectory(dirFile),
		SenderRaw:    outboxSender(outbox),
		Secrets:      []string{opsSecret},
		// A store of its own: the pool shares stores by their settings.
		StorageRaw: ownMemoryStorage(),
		Forward:    &Forward{KeyID: "gw1", HMACKey: opsHMACKey},
		Limits: map[string]Limit{
			"start_ip": high, "start_account": high, "start_phone": high, "verify_ip": high, "sms_global": high,
		},
	}
	if configure != nil {
		configure(h)
	}
	// The logger comes from the config's logging, which a test has none of:
	// the handler is given a capturing one to provision with, and its
	// events app, which a test has none of either, is swapped for a
	// recording one before any request.
	core, logs := zapobs.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		_ = h.Cleanup()
		cancel()
		t.Fatalf("Provision: %v", err)
	}
	events := newOpsEvents(t, ctx)
	h.observer.events = events.app

	g := &opsGateway{
		t: t, h: h, ctx: ctx, outbox: outbox, logs: logs, events: events,
		upstream: &opsUpstream{status: http.StatusNoContent},
	}
	var once sync.Once
	g.close = func() {
		once.Do(func() {
			if err := h.Cleanup(); err != nil {
				t.Errorf("Cleanup: %v", err)
			}
			cancel()
		})
	}
	t.Cleanup(g.close)
	return g
}

// post sends a JSON request to a recovery route as if it came from ip.
func (g *opsGateway) post(route, ip string, body map[string]string) *httptest.ResponseRecorder {
	g.t.Helper()
	s := g.serveCaddy(http.MethodPost, route, ip, body)
	if s.err != nil {
		g.t.Fatalf("POST %s: %v", route, s.err)
	}
	return s.rec
}

// start starts a flow and returns its ID.
func (g *opsGateway) start(account, ip string) string {
	g.t.Helper()
	w := g.post("/start", ip, map[string]string{"account": account})
	if w.Code != http.StatusAccepted {
		g.t.Fatalf("start %s: status %d %s", account, w.Code, w.Body)
	}
	var out struct{ Flow string }
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Flow == "" {
		g.t.Fatalf("start %s: answer %s", account, w.Body)
	}
	return out.Flow
}

// verify checks a code and asserts the status of the answer.
func (g *opsGateway) verify(flow, code, ip string, want int) *httptest.ResponseRecorder {
	g.t.Helper()
	w := g.post("/verify", ip, map[string]string{"flow": flow, "code": code})
	if w.Code != want {
		g.t.Fatalf("verify: status %d %s, want %d", w.Code, w.Body, want)
	}
	return w
}

// opsCodeLine is the origin-bound last line of a code message.
var opsCodeLine = regexp.MustCompile(`@` + regexp.QuoteMeta(opsHost) + ` #([0-9]+)$`)

// code waits for the SMS of flow to reach the outbox and returns its code;
// after a resend, the newest one.
func (g *opsGateway) code(flow string) string {
	g.t.Helper()
	code := ""
	g.events.await(g.t, "an SMS for the flow in the outbox", func() bool {
		for _, m := range g.sent() {
			if strings.Contains(m.Body, "flow="+flow) {
				if sub := opsCodeLine.FindStringSubmatch(m.Body); sub != nil {
					code = sub[1]
				}
			}
		}
		return code != ""
	})
	return code
}

// sent returns the messages in the outbox so far.
func (g *opsGateway) sent() []outboxSMS {
	g.t.Helper()
	return readOutbox(g.t, g.outbox)
}

// wrongCode returns a code of the same length that is not code.
func wrongCode(code string) string {
	return string('0'+(code[0]-'0'+1)%10) + code[1:]
}

// lock starts a flow for account from ip and sends wrong codes until the
// gateway answers want (423 or 403), at most max times. It returns the flow
// and its code.
func (g *opsGateway) lock(account, ip string, max int, want int) (flow, code string) {
	g.t.Helper()
	flow = g.start(account, ip)
	code = g.code(flow)
	for range max {
		w := g.post("/verify", ip, map[string]string{"flow": flow, "code": wrongCode(code)})
		if w.Code == want {
			return flow, code
		}
		if w.Code != http.StatusBadRequest {
			g.t.Fatalf("wrong code: status %d %s", w.Code, w.Body)
		}
	}
	g.t.Fatalf("no %d after %d wrong codes", want, max)
	return "", ""
}

// opsUpstream is the next handler: it records the resets that reach it.
type opsUpstream struct {
	status int

	mu       sync.Mutex
	bodies   []string
	accounts []string
}

func (u *opsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.bodies = append(u.bodies, string(body))
	u.accounts = append(u.accounts, r.Header.Get("X-Recovery-Account"))
	u.mu.Unlock()
	w.WriteHeader(u.status)
	return nil
}

// opsEvents is an events app with a subscriber that records every event.
type opsEvents struct {
	app *caddyevents.App
	// recorded wakes the tests waiting for what an event reports, such as
	// the outbox line of an SMS, which is written before its outcome is
	// emitted (module/observe.go, deliveryOutcome).
	recorded *wake.Signal

	mu     sync.Mutex
	events []caddy.Event
}

func newOpsEvents(t testing.TB, ctx caddy.Context) *opsEvents {
	t.Helper()
	e := &opsEvents{app: new(caddyevents.App), recorded: wake.New()}
	if err := e.app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.app.On("", e); err != nil {
		t.Fatal(err)
	}
	if err := e.app.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// Handle records an event and wakes the waiters.
func (e *opsEvents) Handle(_ context.Context, ev caddy.Event) error {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
	e.recorded.Broadcast()
	return nil
}

// await returns once done reports true. It asks at once and again after
// each event the gateway emits (every SMS outcome is one), never on a
// timer; the timeout only ends a test that would otherwise hang.
func (e *opsEvents) await(t testing.TB, what string, done func() bool) {
	t.Helper()
	if !e.recorded.Await(awaitTimeout, done) {
		t.Fatalf("no %s within %v", what, awaitTimeout)
	}
}

// named returns the data of the events named name, in order.
func (e *opsEvents) named(name string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []map[string]any
	for _, ev := range e.events {
		if ev.Name() == name {
			out = append(out, ev.Data)
		}
	}
	return out
}

// loggedEvents returns the fields of the log entries whose event field is
// name.
func loggedEvents(logs *zapobs.ObservedLogs, name string) []map[string]any {
	var out []map[string]any
	for _, e := range logs.All() {
		if f := e.ContextMap(); f["event"] == name {
			out = append(out, f)
		}
	}
	return out
}

// opsAdmin serves one request through the admin API's routes on a ServeMux,
// answering their errors as Caddy's admin endpoint does: the APIError's
// status and {"error": message}.
func opsAdmin(t *testing.T, method, target string) (int, http.Header, []byte) {
	t.Helper()
	mux := http.NewServeMux()
	for _, rt := range new(admin.API).Routes() {
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			err := rt.Handler.ServeHTTP(w, r)
			if err == nil {
				return
			}
			var ae caddy.APIError
			if !errors.As(err, &ae) {
				ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ae.HTTPStatus)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": ae.Err.Error()})
		})
	}
	r := httptest.NewRequest(method, "http://localhost:2019"+target, nil)
	r.RemoteAddr = opsAdminIP + ":53211"
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.Bytes()
}

// listLocks returns the locks the admin API lists, in clear.
func listLocks(t *testing.T) []recovery.Lock {
	t.Helper()
	status, _, body := opsAdmin(t, http.MethodGet, admin.LocksPath+"?clear=1")
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d %s", admin.LocksPath, status, body)
	}
	var locks []recovery.Lock
	if err := json.Unmarshal(body, &locks); err != nil {
		t.Fatalf("GET %s: %v in %s", admin.LocksPath, err, body)
	}
	return locks
}

func findLock(locks []recovery.Lock, kind, key string) (recovery.Lock, bool) {
	i := slices.IndexFunc(locks, func(l recovery.Lock) bool { return l.Kind == kind && l.Key == key })
	if i < 0 {
		return recovery.Lock{}, false
	}
	return locks[i], true
}

func TestAdminModuleIsLoadable(t *testing.T) {
	t.Parallel()
	// Caddy's admin endpoint makes every admin.api module with New and
	// asserts caddy.AdminRouter: this is all it takes to be on.
	info, err := caddy.GetModule("admin.api.sms_recovery")
	if err != nil {
		t.Fatal(err)
	}
	router, ok := info.New().(caddy.AdminRouter)
	if !ok {
		t.Fatalf("%T is not a caddy.AdminRouter", info.New())
	}
	var patterns []string
	for _, rt := range router.Routes() {
		patterns = append(patterns, rt.Pattern)
	}
	if want := []string{"/sms-recovery/locks", "/sms-recovery/locks/", "/sms-recovery/store-loss", "/sms-recovery/trace/"}; !slices.Equal(patterns, want) {
		t.Errorf("patterns = %q, want %q", patterns, want)
	}
}

// TestAdminListAndLift locks an account and blocks an IPv6 /64 through the
// API, then lists and lifts them through the admin routes.
func TestAdminListAndLift(t *testing.T) {
	// Not parallel: the admin API lists the locks of every store in the
	// process, and other tests hold stores whose Redis is down on purpose,
	// which would make the listing answer 503.
	const (
		account = "admin-locked@example.com"
		ip      = "2001:db8:a:b::1"
		ipKey   = "2001:db8:a:b::/64"
	)
	phones := map[string]string{account: "+31612345601"}
	for i := range 3 {
		phones[fmt.Sprintf("admin-ip%d@example.com", i)] = fmt.Sprintf("+3161234561%d", i)
	}
	g := newOpsGateway(t, phones, func(h *Handler) {
		h.Lockout = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(30 * time.Minute)}
		h.IPBlock = &Threshold{Failures: 3, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(time.Hour)}
	})
	g.lock(account, "192.0.2.10", 2, http.StatusLocked)
	for i := range 3 {
		flow := g.start(fmt.Sprintf("admin-ip%d@example.com", i), ip)
		want := http.StatusBadRequest
		if i == 2 {
			want = http.StatusForbidden
		}
		g.verify(flow, wrongCode(g.code(flow)), ip, want)
	}

	locks := listLocks(t)
	for _, tt := range []struct {
		kind, key string
		duration  time.Duration
	}{
		{recovery.KindAccount, account, 30 * time.Minute},
		{recovery.KindIP, ipKey, time.Hour},
	} {
		l, ok := findLock(locks, tt.kind, tt.key)
		if !ok {
			t.Fatalf("no %s lock on %s in %+v", tt.kind, tt.key, locks)
		}
		if d := l.Until.Sub(l.Since); d != tt.duration {
			t.Errorf("%s lock lasts %s, want %s", tt.kind, d, tt.duration)
		}
		if l.Since.After(time.Now()) || !l.Until.After(time.Now()) {
			t.Errorf("%s lock since %s until %s is not in force", tt.kind, l.Since, l.Until)
		}
	}
	for i := 1; i < len(locks); i++ {
		if locks[i-1].Kind == recovery.KindIP && locks[i].Kind == recovery.KindAccount {
			t.Errorf("account lock listed after an IP block: %+v", locks)
		}
	}

	tests := []struct {
		name     string
		method   string
		target   string
		want     int
		wantBody string // a substring of the answer
	}{
		{"lift account, any case", http.MethodDelete, "/sms-recovery/locks/account/%20Admin-LOCKED@example.com", http.StatusOK,
			`{"kind":"account","key":"admin-locked@example.com"}`},
		{"account lifted already", http.MethodDelete, "/sms-recovery/locks/account/" + account, http.StatusNotFound,
			`"error":"no account lock on \"admin-locked@example.com\" to lift"`},
		{"lift ip by an address in the /64", http.MethodDelete, "/sms-recovery/locks/ip/2001:db8:a:b:ffff::7", http.StatusOK,
			`{"kind":"ip","key":"2001:db8:a:b::/64"}`},
		{"ip lifted already, by the /64", http.MethodDelete, "/sms-recovery/locks/ip/" + ipKey, http.StatusNotFound,
			`"error":"no ip lock on \"2001:db8:a:b::/64\" to lift"`},
		{"never locked", http.MethodDelete, "/sms-recovery/locks/ip/198.51.100.77", http.StatusNotFound, `"error"`},
		{"unknown kind", http.MethodDelete, "/sms-recovery/locks/mailbox/" + account, http.StatusBadRequest,
			`unknown lock kind \"mailbox\"`},
		{"no kind", http.MethodDelete, "/sms-recovery/locks/", http.StatusBadRequest, `unknown lock kind`},
		{"no account", http.MethodDelete, "/sms-recovery/locks/account/", http.StatusBadRequest, `"error":"account name is empty"`},
		{"not an ip", http.MethodDelete, "/sms-recovery/locks/ip/mail.example.com", http.StatusBadRequest, `"error":"ip: `},
		{"prefix other than /64", http.MethodDelete, "/sms-recovery/locks/ip/2001:db8::/48", http.StatusBadRequest, `"error":"ip: `},
		{"ipv4 prefix", http.MethodDelete, "/sms-recovery/locks/ip/192.0.2.0/24", http.StatusBadRequest, `"error":"ip: `},
		{"list takes only GET", http.MethodPost, admin.LocksPath, http.StatusMethodNotAllowed, `"error"`},
		{"a lock takes only PUT and DELETE", http.MethodGet, "/sms-recovery/locks/account/" + account, http.StatusMethodNotAllowed, `"error"`},
		{"only accounts are locked by support", http.MethodPut, "/sms-recovery/locks/ip/" + ipKey, http.StatusBadRequest, `support locks accounts only`},
		{"listing asked in clear by a bad word", http.MethodGet, admin.LocksPath + "?clear=please", http.StatusBadRequest, `"error":"clear: `},
	}
	for _, tt := range tests {
		// In order: each case sees what the ones before it lifted.
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := opsAdmin(t, tt.method, tt.target)
			if status != tt.want {
				t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, status, tt.want)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			if !json.Valid(body) || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body = %s, want JSON containing %s", body, tt.wantBody)
			}
			if status == http.StatusMethodNotAllowed && hdr.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}

	locks = listLocks(t)
	for _, l := range locks {
		if l.Key == account || l.Key == ipKey {
			t.Errorf("lock %+v still listed after lifting", l)
		}
	}

	// Each lift is a security event: logged, and emitted as a Caddy event.
	logged := loggedEvents(g.logs, admin.EventLockLifted)
	if len(logged) != 2 {
		t.Fatalf("%d lock_lifted log entries, want 2: %v", len(logged), logged)
	}
	for i, want := range []struct{ field, key, scope string }{
		{"account_hash", g.h.observer.keys.AccountRef(account), limiter.ScopeLockout},
		{"client_ip", ipKey, limiter.ScopeIPBlock},
	} {
		f := logged[i]
		if f[want.field] != want.key || f["scope"] != want.scope || !strings.Contains(fmt.Sprint(f["reason"]), opsAdminIP) {
			t.Errorf("lock_lifted entry %d = %v, want %s %s, scope %s, by %s", i, f, want.field, want.key, want.scope, opsAdminIP)
		}
	}
	emitted := g.events.named("sms_recovery_" + admin.EventLockLifted)
	if len(emitted) != 2 || emitted[0]["account_hash"] != g.h.observer.keys.AccountRef(account) || emitted[1]["client_ip"] != ipKey {
		t.Errorf("Caddy events sms_recovery_lock_lifted = %v, want the account's hash, then the /64", emitted)
	}
}

// TestAdminLiftGivesFreshTries checks that lifting resets the failure count:
// without that, the next wrong code would lock the account again at once.
func TestAdminLiftGivesFreshTries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		wrong      int // wrong codes before the lift
		liftStatus int
	}{
		{"locked account", 3, http.StatusOK},
		{"account near its lockout", 2, http.StatusNotFound},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			account := fmt.Sprintf("fresh-%d@example.com", i)
			const ip = "192.0.2.20"
			g := newOpsGateway(t, map[string]string{account: "+31612345620"}, func(h *Handler) {
				h.Lockout = &Threshold{Failures: 3, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(time.Hour)}
				h.MaxAttempts = 10
			})
			flow := g.start(account, ip)
			code := g.code(flow)
			for n := 1; n <= tt.wrong; n++ {
				want := http.StatusBadRequest
				if n == 3 {
					want = http.StatusLocked
				}
				g.verify(flow, wrongCode(code), ip, want)
			}
			if tt.wrong == 3 {
				g.verify(flow, code, ip, http.StatusLocked) // even the right code
			}

			status, _, body := opsAdmin(t, http.MethodDelete, "/sms-recovery/locks/account/"+account)
			if status != tt.liftStatus {
				t.Fatalf("lift: status %d %s, want %d", status, body, tt.liftStatus)
			}
			// A fresh count: two more wrong codes stay under the threshold
			// of three, and the right code then gets through.
			for range 2 {
				g.verify(flow, wrongCode(code), ip, http.StatusBadRequest)
			}
			w := g.verify(flow, code, ip, http.StatusOK)
			if !strings.Contains(w.Body.String(), `"reset_token"`) {
				t.Errorf("verify after lift: %s", w.Body)
			}
		})
	}
}
