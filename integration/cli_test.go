package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// asCaddyEnv makes the test binary run as the caddy command: TestMain hands
// its arguments to caddycmd.Main, as cmd/caddy does, so that a test runs
// caddy sms-recovery as a support person would, exit status and all.
const asCaddyEnv = "SMS_RECOVERY_TEST_RUN_AS_CADDY"

// runAsCaddy is called by TestMain first: in a child started by caddy(), it
// runs the caddy command and exits.
func runAsCaddy() {
	if os.Getenv(asCaddyEnv) != "1" {
		return
	}
	os.Args = append([]string{"caddy"}, os.Args[1:]...)
	caddycmd.Main()
	os.Exit(0)
}

// caddyRun is the outcome of one caddy command.
type caddyRun struct {
	stdout, stderr string
	status         int
}

// runCaddy runs `caddy args...` in a child process.
func runCaddy(t *testing.T, args ...string) caddyRun {
	t.Helper()
	self, err := os.Executable() // os.Args[0] is rewritten once Caddy runs
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), asCaddyEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	r := caddyRun{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.status = exit.ExitCode()
	case err != nil:
		t.Fatalf("caddy %v: %v", args, err)
	}
	return r
}

// adminHost is the host:port of the admin endpoint the tests' Caddy runs.
func adminHost() string { return strings.TrimPrefix(admin, "http://") }

// TestCLILiftsLockEndToEnd locks an account with wrong codes, finds the
// lock with caddy sms-recovery locks, lifts it with caddy sms-recovery
// unlock, and starts a flow for the account again.
func TestCLILiftsLockEndToEnd(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr, Extra: "lockout 3 1h 30m"}
	c := start(t, s)
	// The running config, as a file: the command finds its admin address
	// there, as caddy reload does.
	config := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(config, []byte(s.caddyfile(t)), 0o600); err != nil {
		t.Fatal(err)
	}

	if r := runCaddy(t, "sms-recovery", "locks", "--config", config); r.status != 0 || r.stdout != "No locks or blocks in force.\n" {
		t.Fatalf("locks before any lock: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}

	flow := c.startFlow(alice)
	code := c.codeFor(1)
	for i := range 3 {
		a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
		if want := map[bool]int{false: http.StatusBadRequest, true: http.StatusLocked}[i == 2]; a.Status != want {
			t.Fatalf("wrong code %d: %d %s, want %d", i+1, a.Status, a.Raw, want)
		}
	}
	if a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice)); a.Status != http.StatusLocked {
		t.Fatalf("start while locked: %d %s", a.Status, a.Raw)
	}

	// Masked by default, whole with --clear.
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"--config", config}, "a*****@example.com"},
		{[]string{"--config", config, "--clear"}, alice},
	} {
		r := runCaddy(t, append([]string{"sms-recovery", "locks"}, tc.args...)...)
		lines := strings.Split(r.stdout, "\n")
		if r.status != 0 || len(lines) < 2 || !strings.HasPrefix(lines[0], "KIND") {
			t.Fatalf("locks %v: status %d, stdout %q, stderr %q", tc.args, r.status, r.stdout, r.stderr)
		}
		if f := strings.Fields(lines[1]); len(f) != 8 || f[0] != "account" || f[1] != tc.key || f[2] != "wrong_codes" || f[6] != "3" || f[7] != "no" {
			t.Fatalf("locks %v: row %q, want account %s, wrong codes, until in 30m, 3 strikes, not permanent", tc.args, lines[1], tc.key)
		}
		if !strings.Contains(lines[1], "(in 30m)") {
			t.Errorf("locks %v: row %q does not say the lock ends in 30m", tc.args, lines[1])
		}
		if strings.Contains(r.stdout, alice) != (tc.key == alice) {
			t.Errorf("locks %v: the account is whole in %q only with --clear", tc.args, r.stdout)
		}
	}
	if r := runCaddy(t, "sms-recovery", "locks", "--kind", "ip", "--address", adminHost()); r.status != 0 || r.stdout != "No IP blocks in force.\n" {
		t.Errorf("locks --kind ip: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}

	// Support lifts it, named as the person gives it.
	r := runCaddy(t, "sms-recovery", "unlock", "Alice@Example.COM", "--address", adminHost())
	if want := "Lifted the lock on account alice@example.com; it has a fresh set of tries.\n"; r.status != 0 || r.stdout != want {
		t.Fatalf("unlock: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	if a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice)); a.Status != http.StatusAccepted {
		t.Fatalf("start after the lift: %d %s", a.Status, a.Raw)
	}
	if r := runCaddy(t, "sms-recovery", "locks", "--config", config); r.status != 0 || r.stdout != "No locks or blocks in force.\n" {
		t.Errorf("locks after the lift: status %d, stdout %q", r.status, r.stdout)
	}

	// Nothing left to lift: a failure, said in words.
	r = runCaddy(t, "sms-recovery", "unlock", alice, "--address", adminHost())
	if want := `sms-recovery: no account lock on "alice@example.com" to lift`; r.status == 0 || strings.TrimSpace(r.stderr) != want {
		t.Errorf("second unlock: status %d, stderr %q, want non-zero and %q", r.status, r.stderr, want)
	}
	r = runCaddy(t, "sms-recovery", "unblock", "not-an-ip", "--address", adminHost())
	if r.status == 0 || !strings.Contains(r.stderr, "neither an IP address nor an IPv6 /64") {
		t.Errorf("unblock not-an-ip: status %d, stderr %q", r.status, r.stderr)
	}

	// No Caddy at the address.
	dead := freeport.ClosedAddr(t)
	r = runCaddy(t, "sms-recovery", "locks", "--address", dead)
	if r.status == 0 || !strings.Contains(r.stderr, "cannot reach Caddy's admin endpoint at "+dead) {
		t.Errorf("locks at %s: status %d, stderr %q", dead, r.status, r.stderr)
	}
}

// TestCLIImposesLockEndToEnd has support lock bob's recovery with caddy
// sms-recovery lock: his right code then answers 423 account_locked, his
// phone is told once however often support asks, the listing shows the
// lock as support's, and caddy sms-recovery unlock gives him his code back.
// A lock for a time says when it ends, and an account the directory does
// not know gets the same answer and no SMS.
func TestCLIImposesLockEndToEnd(t *testing.T) {
	const bob = "bob@example.com"
	up := startUpstream(t, "127.0.0.1:0")
	name := fmt.Sprintf("Imposed Mail %d", stores.Add(1)) // counters outlive a run
	c := start(t, &site{Upstream: up.addr, SiteName: name})
	flow := c.startFlow(bob)
	_, code := c.codeForFlow(flow)
	notices := func() float64 {
		t.Helper()
		return metricValue(t, metrics(t), `caddy_sms_recovery_events_total{event="lock_notice",scope="",site="`+name+`"}`)
	}
	before := notices()

	for range 2 {
		r := runCaddy(t, "sms-recovery", "lock", "Bob@Example.COM", "--address", adminHost())
		if want := "Locked the recovery of account bob@example.com until support lifts it; if the directory has its phone, the phone is told once.\n" +
			"Lift it with: caddy sms-recovery unlock bob@example.com\n"; r.status != 0 || r.stdout != want {
			t.Fatalf("lock: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
		}
	}
	// The notice is counted before the admin API answers: this count is final.
	if n := notices() - before; n != 1 {
		t.Fatalf("lock notices after two lock commands: %v, want 1", n)
	}
	if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code)); a.Status != http.StatusLocked || a.str("error") != "account_locked" {
		t.Fatalf("the right code while locked: %d %s, want 423 account_locked", a.Status, a.Raw)
	}
	notice := c.noticeAfterCode()
	if notice.To != "+4915123456789" || !strings.Contains(notice.Body, "Der Support hat") || !strings.Contains(notice.Body, "Call +1 555 0100") {
		t.Fatalf("notice to %s: %q, want German, saying support locked it, with the support text", notice.To, notice.Body)
	}

	r := runCaddy(t, "sms-recovery", "locks", "--clear", "--address", adminHost())
	lines := strings.Split(r.stdout, "\n")
	if f := strings.Fields(lines[1]); r.status != 0 || len(f) != 7 || f[1] != bob || f[2] != "support" || f[3] != "until" || f[6] != "yes" {
		t.Fatalf("locks --clear: status %d, stdout %q, want bob's lock by support, until lifted", r.status, r.stdout)
	}

	r = runCaddy(t, "sms-recovery", "lock", "nobody@example.com", "--address", adminHost())
	if r.status != 0 || !strings.HasPrefix(r.stdout, "Locked the recovery of account nobody@example.com until support lifts it;") {
		t.Fatalf("lock of an unknown account: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	r = runCaddy(t, "sms-recovery", "lock", alice, "--for", "2h", "--address", adminHost())
	if r.status != 0 || !strings.Contains(r.stdout, "(in 2h0m);") {
		t.Fatalf("lock --for 2h: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	r = runCaddy(t, "sms-recovery", "lock", alice, "--for", "soon", "--address", adminHost())
	if r.status == 0 || !strings.Contains(r.stderr, `for: "soon" is not a duration`) {
		t.Errorf("lock --for soon: status %d, stderr %q", r.status, r.stderr)
	}

	r = runCaddy(t, "sms-recovery", "unlock", bob, "--address", adminHost())
	if r.status != 0 {
		t.Fatalf("unlock: status %d, stderr %q", r.status, r.stderr)
	}
	if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code)); a.Status != http.StatusOK {
		t.Fatalf("the right code after the lift: %d %s", a.Status, a.Raw)
	}
	// Alice's notice, and none for the unknown account.
	if msgs := c.messages(3); len(msgs) != 3 {
		t.Fatalf("outbox has %d messages, want bob's code, bob's notice and alice's notice", len(msgs))
	}
	if n := notices() - before; n != 2 {
		t.Errorf("lock notices: %v, want 2 (bob once, alice once, the unknown account none)", n)
	}
}

// TestCLITracesEndToEnd locks an account with wrong codes: the refusals
// and the lock notice give the flow's support reference, and caddy
// sms-recovery trace shows support the flow's timeline under it, with the
// phone masked and no code, token or flow ID. A refused start has a
// reference of its own, which does not show the flow's trail; a forged
// reference gets the same 404 as an expired one.
func TestCLITracesEndToEnd(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr, Extra: "lockout 3 1h 30m"}
	c := start(t, s)

	flow := c.startFlow(alice)
	code := c.codeFor(1)
	var ref string
	for i := range 3 {
		a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, wrongCode(code)))
		if a.str("reference") == "" || (ref != "" && a.str("reference") != ref) {
			t.Fatalf("wrong code %d: %d %s, want the flow's reference every time", i+1, a.Status, a.Raw)
		}
		ref = a.str("reference")
	}
	notice := c.messages(2)[1]
	if !strings.HasSuffix(notice.Body, "Reference for support: "+ref) {
		t.Errorf("lock notice %q does not end with the reference %s", notice.Body, ref)
	}
	refused := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice))
	other := refused.str("reference")
	if refused.Status != http.StatusLocked || other == "" || other == ref {
		t.Fatalf("start while locked: %d %s, want 423 with a reference of its own", refused.Status, refused.Raw)
	}

	r := runCaddy(t, "sms-recovery", "trace", strings.ToLower(strings.ReplaceAll(ref, "-", " ")), "--address", adminHost())
	if r.status != 0 {
		t.Fatalf("trace %s: status %d, stdout %q, stderr %q", ref, r.status, r.stdout, r.stderr)
	}
	for _, want := range []string{"Support reference " + ref, "flow_started", "sms_sent", "wrong_code", "account_locked",
		"lock_notice", "answered 400 invalid_code", "answered 423 account_locked", "+31*****678", "127.0.0.*", "account_hash "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trace does not show %q:\n%s", want, r.stdout)
		}
	}
	full := strings.TrimPrefix(notice.To, "+")
	for _, secret := range []string{code, wrongCode(code), flow, full, alice, "127.0.0.1"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("trace shows %q:\n%s", secret, r.stdout)
		}
	}
	// The refused start's reference shows its refusal, not the flow.
	r = runCaddy(t, "sms-recovery", "trace", other, "--address", adminHost())
	if r.status != 0 || !strings.Contains(r.stdout, "answered 423 account_locked") || strings.Contains(r.stdout, "flow_started") {
		t.Errorf("trace %s: status %d, stdout %q, stderr %q", other, r.status, r.stdout, r.stderr)
	}
	// Forged: well formed but never given. Malformed: said so.
	forged := runCaddy(t, "sms-recovery", "trace", "00000-00000", "--address", adminHost())
	if forged.status == 0 || !strings.Contains(forged.stderr, "no trail for this reference") {
		t.Errorf("trace of a forged reference: status %d, stdout %q, stderr %q", forged.status, forged.stdout, forged.stderr)
	}
	if r := runCaddy(t, "sms-recovery", "trace", "K7QMU-2XD9T", "--address", adminHost()); r.status == 0 || !strings.Contains(r.stderr, "is not a support reference") {
		t.Errorf("trace of a malformed reference: status %d, stderr %q", r.status, r.stderr)
	}
}
