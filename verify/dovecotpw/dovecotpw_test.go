package dovecotpw

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// TestDovecotReadsEveryScheme has Dovecot check each hash: it must accept
// the password and refuse another.
func TestDovecotReadsEveryScheme(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		testenv.Missing(t, "Dovecot's doveadm, which checks each hash", "apt-get install dovecot-core", err)
		return
	}
	const pw = "correct horse: battery staple"
	for _, scheme := range Schemes {
		t.Run(scheme, func(t *testing.T) {
			h, err := Hash(scheme, pw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(h, "{"+scheme+"}") {
				t.Fatalf("hash %q lacks the scheme prefix", h)
			}
			if out, err := exec.Command(doveadm, "pw", "-t", h, "-p", pw).CombinedOutput(); err != nil {
				t.Fatalf("doveadm refused the right password: %v: %s", err, out)
			}
			if out, err := exec.Command(doveadm, "pw", "-t", h, "-p", pw+"x").CombinedOutput(); err == nil {
				t.Fatalf("doveadm accepted a wrong password: %s", out)
			}
		})
	}
}

func TestHashSaltsEachTime(t *testing.T) {
	for _, scheme := range Schemes {
		a, _ := Hash(scheme, "same")
		b, _ := Hash(scheme, "same")
		if a == b {
			t.Errorf("%s: two hashes of one password are equal: no salt", scheme)
		}
	}
}

func TestUnknownScheme(t *testing.T) {
	if _, err := Hash("SHA512-CRYPT", "pw"); err == nil || !strings.Contains(err.Error(), "BLF-CRYPT") {
		t.Fatalf("err = %v, want one naming the schemes", err)
	}
}

func TestBLFCryptRefusesTooLong(t *testing.T) {
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 73)); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 73-byte password: err = %v, want ErrTooLong", err)
	}
	if _, err := Hash("ARGON2ID", strings.Repeat("x", 73)); err != nil {
		t.Errorf("ARGON2ID takes a 73-byte password: %v", err)
	}
}
