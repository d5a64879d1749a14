// Package testenv is how a test says that something it needs from the
// machine is missing: a service, a program, a package. Without it the test
// skips with a message that names what it needs and how to get it, which
// the test command lists at its end; under CI=true, where everything is
// installed, it fails instead, since a missing service there is a broken
// pipeline.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

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
	tb.Skipf("skipped: needs %s: %s%s", need, fix, why)
}
