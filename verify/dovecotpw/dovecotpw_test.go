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
	if _, err := Hash("MD5-CRYPT", "pw"); err == nil || !strings.Contains(err.Error(), "SHA512-CRYPT") {
		t.Fatalf("err = %v, want one naming the schemes", err)
	}
}

// TestBLFCryptRefusesTooLong: bcrypt reads 72 bytes, so a longer password
// would be cut short, its end ignored; it is refused instead. The other
// schemes read all of it.
func TestBLFCryptRefusesTooLong(t *testing.T) {
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 72)); err != nil {
		t.Errorf("a 72-byte password: %v", err)
	}
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 73)); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 73-byte password: err = %v, want ErrTooLong", err)
	}
	// 71 ASCII bytes and a two-byte rune: 25 characters would pass a
	// count of characters, not of bytes.
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 71)+"é"); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 73-byte password of 72 characters: err = %v, want ErrTooLong", err)
	}
	for _, scheme := range []string{"SHA512-CRYPT", "ARGON2ID", "SSHA512"} {
		if _, err := Hash(scheme, strings.Repeat("x", 200)); err != nil {
			t.Errorf("%s takes a 200-byte password: %v", scheme, err)
		}
	}
}

// TestParameters pins the cost of each scheme as the package doc states
// it: a weaker default must be a visible change.
func TestParameters(t *testing.T) {
	for scheme, prefix := range map[string]string{
		"BLF-CRYPT":    "{BLF-CRYPT}$2b$12$",
		"SHA512-CRYPT": "{SHA512-CRYPT}$6$rounds=500000$",
		"ARGON2ID":     "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$",
	} {
		h, err := Hash(scheme, "pw")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, prefix) {
			t.Errorf("%s: %q, want the prefix %q", scheme, h, prefix)
		}
	}
}
