package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// outboxes holds the outbox files of every test. It outlives each test on
// purpose: the SMS a test leaves queued (a notice after a reset, the code
// of its last start) are written after it returns, and a queue retrying
// into a removed directory would hold up the next test's config load for
// the whole drain timeout. TestMain removes it when every test is done.
var outboxes string

// runLog is the file the gateway logs to for the whole run, so that the
// tests' own output is what go test prints; a failing test shows its part.
var runLog string

func TestMain(m *testing.M) {
	runAsCaddy()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sms-recovery-outboxes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating the outbox directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	outboxes = dir
	runLog = filepath.Join(dir, "caddy.log")
	ports, err := freeport.Ports(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "choosing ports:", err)
		return 1
	}
	httpPort, httpsPort, adminPort = ports[0], ports[1], ports[2]
	gateway = fmt.Sprintf("http://localhost:%d", httpPort)
	admin = fmt.Sprintf("http://localhost:%d", adminPort)
	code := m.Run()
	if len(failed) > 0 {
		// Last, where a reader of the run's tail sees it: the caddytest
		// config dumps of a failing test can run to hundreds of lines.
		fmt.Fprintf(os.Stderr, "integration: failed: %s\n", strings.Join(failed, ", "))
	}
	return code
}

// newOutbox returns the path of an outbox file of t's own.
func newOutbox(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(outboxes, "outbox-")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "outbox.jsonl")
}
