// Package dovecotpw hashes a password in one of the schemes Dovecot reads
// from its password databases, prefixed with the scheme's name:
// {BLF-CRYPT}, {ARGON2ID} and {SSHA512}. The tests check every scheme with
// Dovecot itself (doveadm pw -t).
//
// {SHA512-CRYPT} is left out: no maintained Go implementation of SHA-crypt
// is available to build on.
package dovecotpw

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Schemes are the names Hash takes, the default first.
var Schemes = []string{"BLF-CRYPT", "ARGON2ID", "SSHA512"}

// Check returns an error naming the schemes Hash takes when scheme is not
// one of them.
func Check(scheme string) error {
	if slices.Contains(Schemes, scheme) {
		return nil
	}
	return fmt.Errorf("scheme '%s' is not one of %s", scheme, strings.Join(Schemes, ", "))
}

// The parameters of the schemes. bcrypt's cost 12 takes a few hundred
// milliseconds; Argon2id runs with RFC 9106's second recommended memory
// and passes, on one lane, the only parallelism Dovecot's libsodium reads.
const (
	bcryptCost    = 12
	argonTime     = 3
	argonMemory   = 64 << 10 // KiB
	argonThreads  = 1
	argonKeyLen   = 32
	saltLen       = 16
	schemeBLF     = "BLF-CRYPT"
	schemeArgon   = "ARGON2ID"
	schemeSSHA512 = "SSHA512"
)

// Hash returns password hashed in scheme, as "{SCHEME}<hash>".
// ErrTooLong is Hash's error for a password longer than the scheme takes.
var ErrTooLong = errors.New("password too long for the scheme")

func Hash(scheme, password string) (string, error) {
	if err := Check(scheme); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt) // never fails
	var h string
	switch scheme {
	case schemeBLF:
		b, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
		if errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return "", fmt.Errorf("%w: %s takes at most 72 bytes", ErrTooLong, scheme)
		} else if err != nil {
			return "", err
		}
		h = string(b)
	case schemeArgon:
		key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
		h = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
			b64(salt), b64(key))
	case schemeSSHA512:
		sum := sha512.Sum512(append([]byte(password), salt...))
		h = base64.StdEncoding.EncodeToString(append(sum[:], salt...))
	}
	return "{" + scheme + "}" + h, nil
}

// b64 is the unpadded base64 of the Argon2 string encoding.
func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }
