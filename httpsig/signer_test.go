package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The SPEC §6 test vector.
const (
	specKeyB64   = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
	specMethod   = "POST"
	specPath     = "/api/reset-password"
	specBody     = `{"password":"N3w-s3cret!"}`
	specAccount  = "alice@example.com"
	specCreated  = 1767225600
	specExpires  = 1767225660
	specNonce    = "bm9uY2UtMDAx"
	specKeyID    = "gw1"
	specDigest   = "sha-256=:CFctwq1O4OyY2N07Cv+SoWEx2jDGAGy8rXdEzsYhnTk=:"
	specSigInput = `recovery=("@method" "@path" "content-digest" "x-recovery-account");created=1767225600;expires=1767225660;nonce="bm9uY2UtMDAx";keyid="gw1";alg="hmac-sha256";tag="sms-recovery"`
	specBase     = `"@method": POST
"@path": /api/reset-password
"content-digest": sha-256=:CFctwq1O4OyY2N07Cv+SoWEx2jDGAGy8rXdEzsYhnTk=:
"x-recovery-account": alice@example.com
"@signature-params": ("@method" "@path" "content-digest" "x-recovery-account");created=1767225600;expires=1767225660;nonce="bm9uY2UtMDAx";keyid="gw1";alg="hmac-sha256";tag="sms-recovery"`
	specSignature = "recovery=:/jkLS3WANVWmYoE0n5izAmxVkAS2CSaBYrJi/ryOAsM=:"
)

func specKey(t testing.TB) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(specKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func specSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewHMACSigner(specKeyID, specKey(t), bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordingSigner wraps a Signer's signing function to capture the
// signature base it signs.
func recordingSigner(s *Signer) (*Signer, *[]byte) {
	var base []byte
	sign := s.sign
	c := *s
	c.sign = func(b []byte) []byte {
		base = append([]byte(nil), b...)
		return sign(b)
	}
	return &c, &base
}

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	s, base := recordingSigner(specSigner(t))
	h := http.Header{}
	if err := s.signWith(h, specMethod, specPath, []byte(specBody), specAccount, specCreated, specExpires, specNonce); err != nil {
		t.Fatal(err)
	}
	if string(*base) != specBase {
		t.Errorf("signature base:\n%s\nwant:\n%s", *base, specBase)
	}
	want := map[string]string{
		HeaderAccount:        specAccount,
		HeaderContentDigest:  specDigest,
		HeaderSignatureInput: specSigInput,
		HeaderSignature:      specSignature,
	}
	for name, v := range want {
		if got := h.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("header has %d fields, want %d: %v", len(h), len(want), h)
	}
}

func TestSignUsesClockAndRandomness(t *testing.T) {
	t.Parallel()
	nonce := bytes.Repeat([]byte{0xfb}, nonceSize)
	s, err := NewHMACSigner("gw1", specKey(t), bytes.NewReader(nonce))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{HeaderSignature: {"recovery=:c3RhbGU=:"}, HeaderAccount: {"mallory@example.com", "x"}}
	now := time.Unix(specCreated, 999_999_999)
	if err := s.Sign(h, specMethod, specPath, []byte(specBody), specAccount, now); err != nil {
		t.Fatal(err)
	}
	wantInput := `recovery=("@method" "@path" "content-digest" "x-recovery-account");created=1767225600;expires=1767225660;nonce="` +
		base64.RawURLEncoding.EncodeToString(nonce) + `";keyid="gw1";alg="hmac-sha256";tag="sms-recovery"`
	if got := h.Get(HeaderSignatureInput); got != wantInput {
		t.Errorf("Signature-Input = %s\nwant %s", got, wantInput)
	}
	if got := h.Values(HeaderAccount); len(got) != 1 || got[0] != specAccount {
		t.Errorf("X-Recovery-Account = %q, want only %q", got, specAccount)
	}
	if got := h.Values(HeaderSignature); len(got) != 1 || got[0] == "recovery=:c3RhbGU=:" {
		t.Errorf("Signature = %q, want one new value", got)
	}
}

func TestSignEd25519(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewEd25519Signer("gw-ed", priv, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	s, base := recordingSigner(s)
	h := http.Header{}
	if err := s.signWith(h, specMethod, specPath, []byte(specBody), specAccount, specCreated, specExpires, specNonce); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.Get(HeaderSignatureInput), `;keyid="gw-ed";alg="ed25519";`) {
		t.Errorf("Signature-Input = %s", h.Get(HeaderSignatureInput))
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(h.Get(HeaderSignature), "recovery=:"), ":"))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, *base, sig) {
		t.Error("signature does not verify with the public key")
	}
}

func TestNewSignerErrors(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	key := specKey(t)
	tests := []struct {
		name string
		new  func() (*Signer, error)
		want string
	}{
		{"short hmac key", func() (*Signer, error) { return NewHMACSigner("gw1", key[:63], bytes.NewReader(nil)) }, "63 bytes"},
		{"short ed25519 key", func() (*Signer, error) { return NewEd25519Signer("gw1", priv[:32], bytes.NewReader(nil)) }, "32 bytes"},
		{"empty key id", func() (*Signer, error) { return NewHMACSigner("", key, bytes.NewReader(nil)) }, "key id"},
		{"quote in key id", func() (*Signer, error) { return NewHMACSigner(`g"w`, key, bytes.NewReader(nil)) }, "visible ASCII"},
		{"space in key id", func() (*Signer, error) { return NewHMACSigner("g w", key, bytes.NewReader(nil)) }, "visible ASCII"},
		{"long key id", func() (*Signer, error) { return NewHMACSigner(strings.Repeat("k", 257), key, bytes.NewReader(nil)) }, "1 to 256"},
		{"no randomness", func() (*Signer, error) { return NewHMACSigner("gw1", key, nil) }, "randomness"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := tt.new()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, %v; want error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestSignRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, account string
	}{
		{"empty method", "", specPath, specAccount},
		{"method with space", "PO ST", specPath, specAccount},
		{"relative path", specMethod, "api/reset", specAccount},
		{"path with query", specMethod, "/api/reset?x=1", specAccount},
		{"path with space", specMethod, "/api/re set", specAccount},
		{"path with newline", specMethod, "/api/reset\n", specAccount},
		{"empty account", specMethod, specPath, ""},
		{"account with newline", specMethod, specPath, "alice@example.com\r\nX-Evil: 1"},
		{"account with trailing space", specMethod, specPath, "alice@example.com "},
		{"account with leading tab", specMethod, specPath, "\talice@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewHMACSigner("gw1", specKey(t), bytes.NewReader(make([]byte, nonceSize)))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{"Content-Type": {"application/json"}}
			if err := s.Sign(h, tt.method, tt.path, nil, tt.account, time.Unix(specCreated, 0)); err == nil {
				t.Fatal("Sign succeeded")
			}
			if len(h) != 1 {
				t.Errorf("header changed on error: %v", h)
			}
		})
	}
}

func TestSignNonceReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s, err := NewHMACSigner("gw1", specKey(t), iotest.ErrReader(boom))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := s.Sign(h, specMethod, specPath, nil, specAccount, time.Now()); !errors.Is(err, boom) {
		t.Fatalf("Sign = %v, want %v", err, boom)
	}
	if len(h) != 0 {
		t.Errorf("header changed on error: %v", h)
	}
}

func TestNewHMACSignerCopiesKey(t *testing.T) {
	t.Parallel()
	key := specKey(t)
	s, err := NewHMACSigner(specKeyID, key, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	h := http.Header{}
	if err := s.signWith(h, specMethod, specPath, []byte(specBody), specAccount, specCreated, specExpires, specNonce); err != nil {
		t.Fatal(err)
	}
	if got := h.Get(HeaderSignature); got != specSignature {
		t.Errorf("Signature = %s after the caller cleared its key, want %s", got, specSignature)
	}
}

func BenchmarkSign(b *testing.B) {
	s, err := NewHMACSigner(specKeyID, specKey(b), zeroReader{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(specBody)
	now := time.Unix(specCreated, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := http.Header{}
		for pb.Next() {
			if err := s.Sign(h, specMethod, specPath, body, specAccount, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// zeroReader is an endless source of zero bytes, safe for concurrent use.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
