// Package caddybin builds the module's Caddy, ./cmd/caddy, for tests that
// run it as a process of its own. Only tests import it.
package caddybin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModuleRoot returns the directory of the module's go.mod, as the go
// command finds it from the working directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("finding the module root: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// build builds ./cmd/caddy of the module into a temporary directory and
// returns the binary's path and a function that removes the directory,
// which the caller calls when its tests are done, whether or not the
// build succeeded.
func build() (bin string, remove func(), err error) {
	remove = func() {}
	root, err := ModuleRoot()
	if err != nil {
		return "", remove, err
	}
	dir, err := os.MkdirTemp("", "sms-recovery-caddy-")
	if err != nil {
		return "", remove, fmt.Errorf("creating a directory for the binary: %w", err)
	}
	remove = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", remove, fmt.Errorf("building caddy: %w\n%s", err, out)
	}
	return bin, remove, nil
}

// Run is the body of a TestMain for tests that run the binary: it builds
// it, sets *bin to its path and *buildErr to why the build failed, if it
// did, runs the tests and removes the binary. It returns the exit code.
func Run(m *testing.M, bin *string, buildErr *error) int {
	var remove func()
	*bin, remove, *buildErr = build()
	defer remove()
	return m.Run()
}
