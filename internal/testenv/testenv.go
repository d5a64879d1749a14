// Package testenv is how a test says that something it needs from the
// machine is missing: a service, a program, a package. Without it the test
// skips with a message that names what it needs and how to get it, which
// the test command lists at its end; under CI=true, where everything is
// installed, it fails instead, since a missing service there is a broken
// pipeline.
package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// RecordDir is the environment variable that names a directory where
// Missing records, one JSON line a skip, what each skipped test needed.
// The test command (./internal/testenv/run) sets it to tell at its end
// what the run missed.
const RecordDir = "SMS_RECOVERY_SKIPS_DIR"

// Need is what a skipped test needed and how to get it.
type Need struct {
	Need string `json:"need"`
	Fix  string `json:"fix"`
}

// Missing skips tb, or fails it when CI=true, because need is missing:
// err says why it is missing (or is nil), and fix says how to get it,
// such as "apt-get install redis-server".
func Missing(tb testing.TB, need, fix string, err error) {
	tb.Helper()
	why := ""
	if err != nil {
		why = fmt.Sprintf(" (%v)", err)
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true, and this test needs %s: %s%s", need, fix, why)
		return
	}
	record(Need{need, fix})
	tb.Skipf("skipped: needs %s: %s%s", need, fix, why)
}

// record appends n to this process's file in RecordDir, if it is set. A
// failure to write only costs the line at the end of the run.
func record(n Need) {
	dir := os.Getenv(RecordDir)
	if dir == "" {
		return
	}
	line, _ := json.Marshal(n)
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.jsonl", os.Getpid())), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}
