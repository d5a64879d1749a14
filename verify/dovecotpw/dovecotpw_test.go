package dovecotpw

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// TestDovecotReadsEveryScheme has Dovecot check each hash: it must accept
// the password and refuse another. Every scheme but bcrypt gets a password
// longer than bcrypt reads, all of which must count. The prefix pins each
// scheme's cost as the package doc states it: a weaker one must be a
// visible change.
func TestDovecotReadsEveryScheme(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		testenv.Missing(t, "Dovecot's doveadm, which checks each hash", "apt-get install dovecot-core", err)
		return
	}
	short := "correct horse: battery staple"
	long := strings.Repeat("correct horse: battery staple ", 3) // 90 bytes
	for _, tt := range []struct{ scheme, prefix, pw string }{
		{"BLF-CRYPT", "{BLF-CRYPT}$2b$12$", short},
		{"SHA512-CRYPT", "{SHA512-CRYPT}$6$rounds=500000$", long},
		{"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", long},
		{"SSHA512", "{SSHA512}", long},
	} {
		t.Run(tt.scheme, func(t *testing.T) {
			h, err := Hash(tt.scheme, tt.pw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(h, tt.prefix) {
				t.Fatalf("hash %q, want the prefix %q", h, tt.prefix)
			}
			if out, err := exec.Command(doveadm, "pw", "-t", h, "-p", tt.pw).CombinedOutput(); err != nil {
				t.Fatalf("doveadm refused the right password: %v: %s", err, out)
			}
			// The same password with its last byte changed: a scheme that
			// cut it short would take it.
			wrong := tt.pw[:len(tt.pw)-1] + "x"
			if out, err := exec.Command(doveadm, "pw", "-t", h, "-p", wrong).CombinedOutput(); err == nil {
				t.Fatalf("doveadm accepted a wrong password: %s", out)
			}
		})
	}
	if len(Schemes) != 4 {
		t.Errorf("Schemes = %v; check every one here", Schemes)
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
// schemes read all of it (TestDovecotReadsEveryScheme).
func TestBLFCryptRefusesTooLong(t *testing.T) {
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 72)); err != nil {
		t.Errorf("a 72-byte password: %v", err)
	}
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 73)); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 73-byte password: err = %v, want ErrTooLong", err)
	}
	// 71 ASCII bytes and a two-byte rune: 72 characters would pass a
	// count of characters, not of bytes.
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 71)+"é"); !errors.Is(err, ErrTooLong) {
		t.Errorf("a 73-byte password of 72 characters: err = %v, want ErrTooLong", err)
	}
}
