package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// outboxes holds the outbox files of every test. It outlives each test on
// purpose: the SMS a test leaves queued (a notice after a reset, the code
// of its last start) are written after it returns, and a queue retrying
// into a removed directory would hold up the next test's config load for
// the whole drain timeout. TestMain removes it when every test is done.
var outboxes string

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
	return m.Run()
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
