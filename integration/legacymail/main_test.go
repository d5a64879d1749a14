package legacymail

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/caddybin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// Set once by TestMain, read by the tests.
var (
	// root is the repository's root directory.
	root string
	// caddyBin is the path of the Caddy binary built from ./cmd/caddy.
	caddyBin string
	// buildErr says why the binary could not be built.
	buildErr error
)

func TestMain(m *testing.M) {
	root, _ = caddybin.ModuleRoot() // "" only when the build fails for it too
	os.Exit(caddybin.Run(m, &caddyBin, &buildErr))
}

// needStack skips the test when Dovecot, php-fpm or openssl are missing,
// or fails it when CI=true, where a missing package is a broken pipeline.
func needStack(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	var missing []string
	if !found("dovecot", "dovecot") {
		missing = append(missing, "dovecot-imapd")
	}
	if !found("php-fpm", "php-fpm[0-9]*") || !found("php", "php") {
		missing = append(missing, "php-fpm")
	}
	if !found("openssl", "openssl") {
		missing = append(missing, "openssl")
	}
	if m, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1"); len(m) == 0 {
		missing = append(missing, "libfaketime")
	}
	if os.Geteuid() == 0 && !found("setpriv", "setpriv") {
		missing = append(missing, "util-linux")
	}
	if len(missing) == 0 {
		return
	}
	testenv.Missing(t, "the legacy-mail stack's "+strings.Join(missing, ", "), "apt-get install "+strings.Join(missing, " "), nil)
}

// found reports whether a program is on PATH or in /usr/sbin, the way the
// run script looks for it.
func found(name, sbinGlob string) bool {
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	matches, _ := filepath.Glob(filepath.Join("/usr/sbin", sbinGlob))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}
