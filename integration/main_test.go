package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	ports, err := freePorts(3)
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

// freePorts returns n loopback TCP ports that were free a moment ago. Caddy
// binds its own listeners from the config, so the ports are found by
// binding and closing; they are held open together so that they differ.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
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
