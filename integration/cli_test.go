package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
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

	r := runCaddy(t, "sms-recovery", "locks", "--config", config)
	lines := strings.Split(r.stdout, "\n")
	if r.status != 0 || len(lines) < 2 || !strings.HasPrefix(lines[0], "KIND") {
		t.Fatalf("locks: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	if f := strings.Fields(lines[1]); len(f) != 7 || f[0] != "account" || f[1] != alice || f[5] != "3" || f[6] != "no" {
		t.Fatalf("locks: row %q, want account %s, until in 30m, 3 strikes, not permanent", lines[1], alice)
	}
	if !strings.Contains(lines[1], "(in 30m)") {
		t.Errorf("locks: row %q does not say the lock ends in 30m", lines[1])
	}
	if r := runCaddy(t, "sms-recovery", "locks", "--kind", "ip", "--address", adminHost()); r.status != 0 || r.stdout != "No IP blocks in force.\n" {
		t.Errorf("locks --kind ip: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}

	// Support lifts it, named as the person gives it.
	r = runCaddy(t, "sms-recovery", "unlock", "Alice@Example.COM", "--address", adminHost())
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r = runCaddy(t, "sms-recovery", "locks", "--address", dead)
	if r.status == 0 || !strings.Contains(r.stderr, "cannot reach Caddy's admin endpoint at "+dead) {
		t.Errorf("locks at %s: status %d, stderr %q", dead, r.status, r.stderr)
	}
}
