// Package dovecotpw hashes a password in one of the schemes Dovecot reads
// from its password databases, prefixed with the scheme's name:
// {BLF-CRYPT}, {SHA512-CRYPT}, {ARGON2ID} and {SSHA512}. The tests check
// every scheme with Dovecot itself (doveadm pw -t).
//
// The crypt(3) schemes and Argon2id come from one library,
// github.com/go-crypt/crypt, which encodes each the way crypt(3) and
// libsodium write it; {SSHA512} is Dovecot's own salted SHA-512, which that
// library does not offer, from the standard library.
package dovecotpw

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
)

// Schemes are the names Hash takes, the default first.
var Schemes = []string{schemeBLF, schemeSHA512Crypt, schemeArgon, schemeSSHA512}

// Check returns an error naming the schemes Hash takes when scheme is not
// one of them.
func Check(scheme string) error {
	if slices.Contains(Schemes, scheme) {
		return nil
	}
	return fmt.Errorf("scheme '%s' is not one of %s", scheme, strings.Join(Schemes, ", "))
}

// The parameters of the schemes. bcrypt's cost 12 takes a few hundred
// milliseconds, and so do SHA-crypt's 500,000 rounds (crypt(3)'s default
// of 5,000 dates from 2007); Dovecot spends as much on each login. Argon2id
// runs with RFC 9106's second recommended memory and passes, on one lane,
// the only parallelism Dovecot's libsodium reads.
const (
	bcryptCost        = 12
	shaCryptRounds    = 500_000
	argonTime         = 3
	argonMemory       = 64 << 10 // KiB
	argonThreads      = 1
	argonKeyLen       = 32
	saltLen           = 16
	schemeBLF         = "BLF-CRYPT"
	schemeSHA512Crypt = "SHA512-CRYPT"
	schemeArgon       = "ARGON2ID"
	schemeSSHA512     = "SSHA512"
)

// ErrTooLong is Hash's error for a password longer than the scheme takes.
var ErrTooLong = errors.New("password too long for the scheme")

// Hash returns password hashed in scheme, as "{SCHEME}<hash>".
func Hash(scheme, password string) (string, error) {
	if err := Check(scheme); err != nil {
		return "", err
	}
	var (
		hasher algorithm.Hash
		err    error
	)
	switch scheme {
	case schemeBLF:
		// bcrypt reads 72 bytes and would ignore the rest: a longer
		// password is refused rather than cut short.
		if len(password) > bcrypt.PasswordInputSizeMax {
			return "", fmt.Errorf("%w: %s takes at most %d bytes", ErrTooLong, scheme, bcrypt.PasswordInputSizeMax)
		}
		hasher, err = bcrypt.New(bcrypt.WithCost(bcryptCost))
	case schemeSHA512Crypt:
		hasher, err = shacrypt.New(shacrypt.WithSHA512(), shacrypt.WithRounds(shaCryptRounds), shacrypt.WithSaltLength(saltLen))
	case schemeArgon:
		hasher, err = argon2.New(argon2.WithVariantID(), argon2.WithT(argonTime), argon2.WithM(argonMemory),
			argon2.WithP(argonThreads), argon2.WithK(argonKeyLen), argon2.WithS(saltLen))
	case schemeSSHA512:
		salt := make([]byte, saltLen)
		_, _ = rand.Read(salt) // never fails
		sum := sha512.Sum512(append([]byte(password), salt...))
		return "{" + scheme + "}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...)), nil
	}
	if err != nil {
		return "", err
	}
	digest, err := hasher.Hash(password)
	if err != nil {
		return "", err
	}
	return "{" + scheme + "}" + digest.Encode(), nil
}
