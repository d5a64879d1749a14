package httpsig

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// nonceSize is the number of random bytes in a nonce: 128 bits make a
// collision between two signatures practically impossible.
const nonceSize = 16

// Signer signs forwarded requests with one key. It is safe for concurrent use
// when its source of randomness is, as crypto/rand.Reader is.
type Signer struct {
	keyID string
	alg   string
	sign  func(base []byte) []byte
	rand  io.Reader
}

// NewHMACSigner returns a Signer for alg hmac-sha256 with a shared key of at
// least MinHMACKeySize bytes. Nonces are read from rand, normally
// crypto/rand.Reader.
func NewHMACSigner(keyID string, key []byte, rand io.Reader) (*Signer, error) {
	if len(key) < MinHMACKeySize {
		return nil, fmt.Errorf("hmac key has %d bytes, want at least %d", len(key), MinHMACKeySize)
	}
	key = append([]byte(nil), key...)
	return newSigner(keyID, AlgHMACSHA256, func(base []byte) []byte {
		return hmacSHA256(key, base)
	}, rand)
}

// NewEd25519Signer returns a Signer for alg ed25519. Nonces are read from
// rand, normally crypto/rand.Reader.
func NewEd25519Signer(keyID string, key ed25519.PrivateKey, rand io.Reader) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	key = append(ed25519.PrivateKey(nil), key...)
	return newSigner(keyID, AlgEd25519, func(base []byte) []byte {
		return ed25519.Sign(key, base)
	}, rand)
}

func newSigner(keyID, alg string, sign func([]byte) []byte, rand io.Reader) (*Signer, error) {
	if err := checkKeyID(keyID); err != nil {
		return nil, err
	}
	if rand == nil {
		return nil, errors.New("no source of randomness")
	}
	return &Signer{keyID: keyID, alg: alg, sign: sign, rand: rand}, nil
}

// hmacSHA256 is the hmac-sha256 signature of msg.
func hmacSHA256(key, msg []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return mac.Sum(nil)
}

// checkKeyID refuses key IDs that cannot travel as a plain structured-field
// string.
func checkKeyID(id string) error {
	if id == "" || len(id) > 256 {
		return errors.New("key id must have 1 to 256 characters")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Errorf("key id %q must be visible ASCII without '\"' or '\\'", id)
		}
	}
	return nil
}

// Sign signs a request for the verified account. It sets, replacing any
// earlier values, the X-Recovery-Account, Content-Digest, Signature-Input
// and Signature fields of h. method is the request method; path is the
// request path exactly as it goes on the wire (percent-encoded, without the
// query, like url.URL.EscapedPath); body is the whole body the upstream
// receives. The signature is created at now and expires MaxValidity later.
// On error h is left unchanged.
func (s *Signer) Sign(h http.Header, method, path string, body []byte, account string, now time.Time) error {
	b := make([]byte, nonceSize)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return fmt.Errorf("reading nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	created := now.Unix()
	return s.signWith(h, method, path, body, account, created, created+int64(MaxValidity/time.Second), nonce)
}

// signWith is Sign with the random and time-dependent inputs given, so that
// tests can reproduce published vectors.
func (s *Signer) signWith(h http.Header, method, path string, body []byte, account string, created, expires int64, nonce string) error {
	if err := checkMethod(method); err != nil {
		return err
	}
	if err := checkPath(path); err != nil {
		return err
	}
	if err := checkAccount(account); err != nil {
		return err
	}
	digest := ContentDigest(body)
	components := []component{
		{"@method", method},
		{"@path", path},
		{"content-digest", digest},
		{"x-recovery-account", account},
	}
	params := sfParams{
		{"created", created},
		{"expires", expires},
		{"nonce", nonce},
		{"keyid", s.keyID},
		{"alg", s.alg},
		{"tag", Tag},
	}
	sigParams, err := signatureParams(components, params)
	if err != nil {
		return fmt.Errorf("serializing signature parameters: %w", err)
	}
	base, err := signatureBase(components, sigParams)
	if err != nil {
		return err
	}
	h.Set(HeaderAccount, account)
	h.Set(HeaderContentDigest, digest)
	h.Set(HeaderSignatureInput, Label+"="+sigParams)
	h.Set(HeaderSignature, Label+"=:"+base64.StdEncoding.EncodeToString(s.sign(base))+":")
	return nil
}

// checkMethod accepts an HTTP token.
func checkMethod(m string) error {
	if !isToken(m) {
		return fmt.Errorf("method %q is not an HTTP token", m)
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), the form
// of both methods and field names.
func isToken(s string) bool {
	return httpguts.ValidHeaderFieldName(s)
}

// checkPath accepts an absolute path of visible ASCII, as it is sent.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q does not start with '/'", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x21 || c > 0x7e || c == '?' || c == '#' {
			return fmt.Errorf("path %q has a character that must be percent-encoded", p)
		}
	}
	return nil
}

// checkAccount accepts a value that survives as a header field unchanged: no
// control characters and no surrounding white space, which RFC 9421
// canonicalization would strip.
func checkAccount(a string) error {
	if a == "" {
		return errors.New("empty account")
	}
	if strings.Trim(a, " \t") != a {
		return errors.New("account has leading or trailing white space")
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c < 0x20 || c == 0x7f {
			return errors.New("account has a control character")
		}
	}
	return nil
}
