package writers

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/caddybin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// Set once by TestMain, read by the tests.
var (
	// caddyBin is the path of the Caddy binary built from ./cmd/caddy.
	caddyBin string
	// buildErr says why the binary could not be built.
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(caddybin.Run(m, &caddyBin, &buildErr))
}

// dovecotModules is where Debian's Dovecot keeps its passdb drivers.
const dovecotModules = "/usr/lib/dovecot/modules"

// needDovecot skips the test when Dovecot, the passdb driver for store
// ("" for none: passwd-file is built in) or libfaketime is missing, or
// fails it when CI=true, where a missing package is a broken pipeline.
func needDovecot(t *testing.T, driver string) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if _, err := dovecotBin(); err != nil {
		testenv.Missing(t, "Dovecot", "apt-get install dovecot-imapd", err)
	}
	if driver != "" {
		if _, err := os.Stat(filepath.Join(dovecotModules, "auth", "libdriver_"+driver+".so")); err != nil {
			testenv.Missing(t, "Dovecot's "+driver+" driver", "apt-get install dovecot-"+driver, err)
		}
	}
	if _, err := fakeTimeLib(); err != nil {
		testenv.Missing(t, "libfaketime, which moves Dovecot's clock on", "apt-get install libfaketime", err)
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("setpriv"); err != nil {
			testenv.Missing(t, "setpriv, which runs Dovecot as nobody", "apt-get install util-linux", err)
		}
	}
}

// dovecotBin is the path of the dovecot program.
func dovecotBin() (string, error) {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err != nil {
		return "", err
	}
	return "/usr/sbin/dovecot", nil
}

// fakeTimeLib is the path of libfaketime.
func fakeTimeLib() (string, error) {
	m, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1")
	if len(m) == 0 {
		return "", os.ErrNotExist
	}
	return m[0], nil
}
