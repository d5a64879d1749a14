package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// now is the time the tests read the time left on a lock by.
var now = time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)

// fakeAdmin stands in for Caddy's admin endpoint with the sms_recovery
// routes: it answers what a test sets and records what it was asked.
type fakeAdmin struct {
	srv *httptest.Server

	mu     sync.Mutex
	asked  []string // "METHOD escaped-path[?query]"
	origin []string
	status int
	body   string
}

func newFakeAdmin(t *testing.T, status int, body string) *fakeAdmin {
	t.Helper()
	a := &fakeAdmin{status: status, body: body}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		asked := r.Method + " " + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			asked += "?" + r.URL.RawQuery
		}
		a.asked = append(a.asked, asked)
		a.origin = append(a.origin, r.Header.Get("Origin"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAdmin) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *fakeAdmin) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.asked...)
}

// execute runs caddy sms-recovery with args and returns its output and error.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "sms-recovery"}
	attach(root, func() time.Time { return now })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

const threeLocks = `[
 {"kind":"account","key":"alice@example.com","until":"2026-12-01T22:29:40Z","since":"2026-12-01T21:59:40Z","strikes":5,"locks":1,"reason":"wrong_codes"},
 {"kind":"ip","key":"2001:db8:1:2::/64","since":"2026-11-30T10:00:00Z","permanent":true,"strikes":100,"locks":7,"reason":"wrong_codes"},
 {"kind":"prefix","key":"+447400","until":"2026-12-02T21:00:00Z","since":"2026-12-01T21:00:00Z","strikes":2,"locks":2,"reason":"low_conversion","country":"GB"}
]`

func TestLocksTable(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, threeLocks)
	out, errOut, err := execute(t, "locks", "--clear", "--address", a.addr())
	if err != nil {
		t.Fatalf("locks: %v (stderr %q)", err, errOut)
	}
	want := `KIND     KEY                REASON          UNTIL                            STRIKES  PERMANENT
account  alice@example.com  wrong_codes     2026-12-01T22:29:40Z (in 30m)    5        no
ip       2001:db8:1:2::/64  wrong_codes     until lifted                     100      yes
prefix   +447400 (GB)       low_conversion  2026-12-02T21:00:00Z (in 23h0m)  2        no

Lift one with: caddy sms-recovery unlock <account>, unblock <ip> or unblock-prefix <prefix>
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "GET /sms-recovery/locks?clear=1" {
		t.Errorf("asked %v, want one GET /sms-recovery/locks?clear=1", got)
	}
	// The admin endpoint refuses a request without the Origin it expects.
	if got := a.origin[0]; got != "http://"+a.addr() {
		t.Errorf("Origin %q, want http://%s", got, a.addr())
	}
}

// TestLocksMasked: without --clear the listing asks for the masked keys
// the admin API gives by default, and says how to see them whole.
func TestLocksMasked(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `[
 {"kind":"account","key":"a*****@example.com","since":"2026-12-01T21:00:00Z","permanent":true,"strikes":0,"locks":0,"reason":"support"}
]`)
	out, _, err := execute(t, "locks", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	want := `KIND     KEY                 REASON   UNTIL         STRIKES  PERMANENT
account  a*****@example.com  support  until lifted  0        yes

Lift one with: caddy sms-recovery unlock <account>, unblock <ip> or unblock-prefix <prefix>
Accounts and addresses are masked: list them whole with --clear.
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "GET /sms-recovery/locks" {
		t.Errorf("asked %v, want one GET /sms-recovery/locks", got)
	}
}

// TestLock imposes a lock: until lifted without --for, for a time with it,
// the account escaped in the path, and the admin API's refusal of a bad
// duration said in words.
func TestLock(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `{"kind":"account","key":"alice@example.com","permanent":true}`)
	out, _, err := execute(t, "lock", "Alice@Example.COM", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	want := "Locked the recovery of account alice@example.com until support lifts it; if the directory has its phone, the phone is told once.\n" +
		"Lift it with: caddy sms-recovery unlock alice@example.com\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "PUT /sms-recovery/locks/account/Alice@Example.COM" {
		t.Errorf("asked %v", got)
	}

	b := newFakeAdmin(t, http.StatusOK, `{"kind":"account","key":"bob+x@example.com","until":"2026-12-02T00:00:00Z"}`)
	out, _, err = execute(t, "lock", "bob+x@example.com", "--for", "2h", "--address", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Locked the recovery of account bob+x@example.com until 2026-12-02T00:00:00Z (in 2h0m);") {
		t.Errorf("output %q", out)
	}
	if got := b.requests(); len(got) != 1 || got[0] != "PUT /sms-recovery/locks/account/bob+x@example.com?for=2h" {
		t.Errorf("asked %v", got)
	}

	c := newFakeAdmin(t, http.StatusBadRequest, `{"error":"for: \"soon\" is not a duration of at least 1s (such as 30m, 24h or 7d); leave it out for a lock until support lifts it"}`)
	_, errOut, err := execute(t, "lock", "alice@example.com", "--for", "soon", "--address", c.addr())
	if err == nil || !strings.Contains(errOut, `refused (400 Bad Request): for: "soon" is not a duration`) {
		t.Errorf("lock --for soon: %v, stderr %q", err, errOut)
	}
	if _, _, err := execute(t, "lock", " ", "--address", c.addr()); err == nil || !strings.Contains(err.Error(), "give the account to lock") {
		t.Errorf("lock of a blank account: %v", err)
	}
}

func TestLocksKindFilter(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, threeLocks)
	out, _, err := execute(t, "locks", "--kind", "ip", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "alice") || !strings.Contains(out, "2001:db8:1:2::/64") {
		t.Errorf("--kind ip printed:\n%s", out)
	}
	out, _, err = execute(t, "locks", "--kind", "account", "--json", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "2001:db8") || !strings.Contains(out, `"key": "alice@example.com"`) {
		t.Errorf("--kind account --json printed:\n%s", out)
	}
	if strings.Contains(out, "+447400") {
		t.Errorf("--kind account --json printed a prefix:\n%s", out)
	}
	out, _, err = execute(t, "locks", "--kind", "prefix", "--address", a.addr())
	if err != nil || strings.Contains(out, "alice") || !strings.Contains(out, "+447400 (GB)") {
		t.Errorf("--kind prefix printed %v:\n%s", err, out)
	}
	_, errOut, err := execute(t, "locks", "--kind", "phone", "--address", a.addr())
	if err == nil || !strings.Contains(errOut, `--kind "phone": want account, ip or prefix`) {
		t.Errorf("--kind phone: err %v, stderr %q", err, errOut)
	}
	if n := len(a.requests()); n != 3 {
		t.Errorf("%d requests, want 3: a bad --kind asks nothing", n)
	}
}

func TestLocksNone(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `[]`)
	for kind, want := range map[string]string{
		"":        "No locks or blocks in force.\n",
		"account": "No account locks in force.\n",
		"ip":      "No IP blocks in force.\n",
		"prefix":  "No prefix blocks in force.\n",
	} {
		out, _, err := execute(t, "locks", "--kind", kind, "--address", a.addr())
		if err != nil || out != want {
			t.Errorf("--kind %q: %q, %v; want %q", kind, out, err, want)
		}
	}
}

func TestUnlock(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `{"kind":"account","key":"alice@example.com"}`)
	out, _, err := execute(t, "unlock", "Alice@Example.COM", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Lifted the lock on account alice@example.com; it has a fresh set of tries.\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "DELETE /sms-recovery/locks/account/Alice@Example.COM" {
		t.Errorf("asked %v", got)
	}
}

func TestAcknowledgeLoss(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `{"acknowledged":1}`)
	out, _, err := execute(t, "acknowledge-loss", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Acknowledged the loss of state of 1 storage(s); recovery works again.") {
		t.Errorf("output %q", out)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "DELETE /sms-recovery/store-loss" {
		t.Errorf("asked %v", got)
	}
	none := newFakeAdmin(t, http.StatusNotFound, `{"error":"no loss of state to acknowledge"}`)
	if _, stderr, err := execute(t, "acknowledge-loss", "--address", none.addr()); err == nil ||
		!strings.Contains(stderr, "no loss of state to acknowledge") {
		t.Errorf("nothing to acknowledge: %v, %q", err, stderr)
	}
}

func TestUnblock(t *testing.T) {
	for key, path := range map[string]string{
		"203.0.113.7":       "/sms-recovery/locks/ip/203.0.113.7",
		"2001:db8:1:2::/64": "/sms-recovery/locks/ip/2001:db8:1:2::/64",
	} {
		a := newFakeAdmin(t, http.StatusOK, fmt.Sprintf(`{"kind":"ip","key":%q}`, key))
		out, _, err := execute(t, "unblock", key, "--address", a.addr())
		if err != nil {
			t.Fatal(err)
		}
		if want := "Lifted the block on client " + key + "; it has a fresh set of tries.\n"; out != want {
			t.Errorf("output %q, want %q", out, want)
		}
		if got := a.requests(); len(got) != 1 || got[0] != "DELETE "+path {
			t.Errorf("asked %v, want DELETE %s", got, path)
		}
	}
}

func TestUnblockPrefix(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `{"kind":"prefix","key":"+447400"}`)
	out, _, err := execute(t, "unblock-prefix", "+447400", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Lifted the block on destination prefix +447400; its codes go out again, and its next block is a first one.\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "DELETE /sms-recovery/locks/prefix/+447400" {
		t.Errorf("asked %v, want DELETE /sms-recovery/locks/prefix/+447400", got)
	}
	if _, _, err := execute(t, "unblock-prefix", " ", "--address", a.addr()); err == nil ||
		!strings.Contains(err.Error(), "give the destination prefix (such as +447400) to lift") {
		t.Errorf("unblock-prefix of nothing: %v", err)
	}
}

// TestRefusals: every answer but success is an error, printed once on
// stderr in words, with the admin API's own message.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		args   []string
		want   string
	}{
		{"no such lock", http.StatusNotFound, `{"error":"no account lock on \"bob@example.com\" to lift"}` + "\n",
			[]string{"unlock", "bob@example.com"}, `sms-recovery: no account lock on "bob@example.com" to lift` + "\n"},
		{"bad key", http.StatusBadRequest, `{"error":"ip: \"nope\" is neither an IP address nor an IPv6 /64"}`,
			[]string{"unblock", "nope"}, `sms-recovery: the admin endpoint refused (400 Bad Request): ip: "nope" is neither an IP address nor an IPv6 /64` + "\n"},
		{"storage down", http.StatusServiceUnavailable, `{"error":"redis locks: service unavailable"}`,
			[]string{"locks"}, "sms-recovery: the storage of the locks does not answer: redis locks: service unavailable\n"},
		{"module missing", http.StatusNotFound, `{"error":"not found"}`,
			[]string{"locks"}, "sms-recovery: the admin endpoint at %s has no /sms-recovery/locks: its Caddy lacks the sms_recovery module\n"},
		{"not JSON", http.StatusOK, `<html>`,
			[]string{"locks"}, "sms-recovery: the admin endpoint at %s gave an answer this command cannot read (does its Caddy have the sms_recovery module?): invalid character '<' looking for beginning of value\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFakeAdmin(t, tc.status, tc.body)
			out, errOut, err := execute(t, append(tc.args, "--address", a.addr())...)
			if err == nil {
				t.Fatalf("no error; stdout %q", out)
			}
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, a.addr())
			}
			if errOut != want || out != "" {
				t.Errorf("stderr %q, want %q; stdout %q", errOut, want, out)
			}
		})
	}
}

func TestAdminUnreachable(t *testing.T) {
	addr := freeport.ClosedAddr(t)
	_, errOut, err := execute(t, "unlock", "alice@example.com", "--address", addr)
	if err == nil || !strings.HasPrefix(errOut, "sms-recovery: cannot reach Caddy's admin endpoint at "+addr+" (is Caddy running?") {
		t.Errorf("err %v, stderr %q", err, errOut)
	}
}

// TestAdminAddressFromConfig finds the admin endpoint as caddy reload does:
// from the config's admin address when --address is not given.
func TestAdminAddressFromConfig(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `[]`)
	config := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(config, []byte("{\n\tadmin "+a.addr()+"\n}\n:0 {\n\trespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute(t, "locks", "--config", config)
	if err != nil || out != "No locks or blocks in force.\n" {
		t.Fatalf("locks --config: %q, %v, stderr %q", out, err, errOut)
	}
	if n := len(a.requests()); n != 1 {
		t.Errorf("%d requests reached the config's admin address, want 1", n)
	}
	// --address wins over the config.
	b := newFakeAdmin(t, http.StatusOK, `[]`)
	if _, _, err := execute(t, "locks", "--config", config, "--address", b.addr()); err != nil {
		t.Fatal(err)
	}
	if n, m := len(a.requests()), len(b.requests()); n != 1 || m != 1 {
		t.Errorf("requests: config's %d, --address's %d; want 1 and 1", n, m)
	}
}

func TestArguments(t *testing.T) {
	for _, args := range [][]string{{"unlock"}, {"unlock", "a", "b"}, {"unblock"}, {"locks", "extra"}, {"lock"}, {"lock", "a", "b"}} {
		if _, _, err := execute(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	_, _, err := execute(t, "unlock", "  ", "--address", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "give the account to lift") {
		t.Errorf("blank account: %v", err)
	}
}

func TestRemaining(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                "0s",
		42*time.Second + 400e6:      "42s",
		29*time.Minute + 40e9:       "30m",
		90 * time.Minute:            "1h30m",
		2 * time.Hour:               "2h0m",
		100*time.Hour + time.Minute: "100h1m",
	} {
		if got := remaining(d); got != want {
			t.Errorf("remaining(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestTrace(t *testing.T) {
	a := newFakeAdmin(t, http.StatusOK, `{"reference":"K7QMX-2XD9T","entries":[
 {"at":"2026-12-01T21:59:40Z","event":"flow_started","phone":"+31*****678","client_ip":"192.0.2.*","account_hash":"0123456789abcdef","site":"Mail"},
 {"at":"2026-12-01T22:00:10Z","event":"account_locked","scope":"lockout","client_ip":"192.0.2.*","account_hash":"0123456789abcdef","site":"Mail"},
 {"at":"2026-12-01T22:00:10Z","event":"answered","status":423,"error":"account_locked","retry_after":1800,"client_ip":"192.0.2.*","site":"Mail"}]}`)
	out, _, err := execute(t, "trace", "k7qmx 2xd9t", "--address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Support reference K7QMX-2XD9T, times in UTC:\n",
		"2026-12-01 21:59:40  flow_started    phone +31*****678; from 192.0.2.*; account_hash 0123456789abcdef; site Mail\n",
		"2026-12-01 22:00:10  account_locked  limit lockout; from 192.0.2.*; account_hash 0123456789abcdef; site Mail\n",
		"2026-12-01 22:00:10  answered        answered 423 account_locked, retry after 30m; from 192.0.2.*; site Mail\n",
		"show them with --clear",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := execute(t, "trace", "K7QMX-2XD9T", "--clear", "--address", a.addr()); err != nil {
		t.Fatal(err)
	}
	if got := a.requests(); len(got) != 2 || got[0] != "GET /sms-recovery/trace/K7QMX-2XD9T" || got[1] != "GET /sms-recovery/trace/K7QMX-2XD9T?clear=1" {
		t.Errorf("asked %v", got)
	}
	// A reference that cannot be one is refused before asking anyone.
	if _, errOut, err := execute(t, "trace", "K7QMU-2XD9T", "--address", a.addr()); err == nil || !strings.Contains(errOut, "is not a support reference") {
		t.Errorf("trace of a malformed reference: %v %q", err, errOut)
	}
	// Unknown or forged: the admin API's one 404, said as it is.
	nf := newFakeAdmin(t, http.StatusNotFound, `{"error":"no trail for this reference: it is mistyped, expired, or was never given"}`)
	if _, errOut, err := execute(t, "trace", "00000-00000", "--address", nf.addr()); err == nil ||
		errOut != "sms-recovery: no trail for this reference: it is mistyped, expired, or was never given\n" {
		t.Errorf("trace of an unknown reference: %v %q", err, errOut)
	}
}
