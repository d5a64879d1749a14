package httpsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// request is a signed request as a verifier receives it.
type request struct {
	h      http.Header
	method string
	path   string
	body   []byte
}

// sigInputWith returns the spec request with the first old in its
// Signature-Input replaced by new.
func sigInputWith(old, new string) func(*testing.T) request {
	return func(*testing.T) request {
		r := specRequest()
		r.h.Set(HeaderSignatureInput, strings.Replace(specSigInput, old, new, 1))
		return r
	}
}

// specRequest returns the SPEC §6 vector as received.
func specRequest() request {
	return request{
		h: http.Header{
			"Content-Type":       {"application/json"},
			HeaderAccount:        {specAccount},
			HeaderContentDigest:  {specDigest},
			HeaderSignatureInput: {specSigInput},
			HeaderSignature:      {specSignature},
		},
		method: specMethod,
		path:   specPath,
		body:   []byte(specBody),
	}
}

// specNow is a time inside the vector's window.
var specNow = time.Unix(specCreated+10, 0)

func newSpecVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{KeyID: specKeyID, HMACKey: specKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signed returns the SPEC request signed by s with the given window and
// nonce.
func signed(t *testing.T, s *Signer, created, expires int64, nonce string) request {
	t.Helper()
	r := specRequest()
	r.h = http.Header{"Content-Type": {"application/json"}}
	if err := s.signWith(r.h, r.method, r.path, r.body, specAccount, created, expires, nonce); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifySpecVector(t *testing.T) {
	t.Parallel()
	v := newSpecVerifier(t)
	r := specRequest()
	account, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if account != specAccount {
		t.Errorf("account = %q, want %q", account, specAccount)
	}
	if _, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); !errors.Is(err, ErrReplay) {
		t.Errorf("second Verify = %v, want ErrReplay", err)
	}
}

func TestVerifyEd25519RoundTrip(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewEd25519Signer("gw-ed", priv, zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{KeyID: "gw-ed", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	body := []byte("password=N3w-s3cret%21")
	now := time.Unix(specCreated, 0)
	if err := s.Sign(h, "POST", "/reset", body, "bob@example.com", now); err != nil {
		t.Fatal(err)
	}
	account, err := v.Verify(t.Context(), h, "POST", "/reset", body, now.Add(30*time.Second))
	if err != nil || account != "bob@example.com" {
		t.Fatalf("Verify = %q, %v; want bob@example.com", account, err)
	}

	other, _, err := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{8}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewVerifier(VerifierConfig{KeyID: "gw-ed", PublicKey: other})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(t.Context(), h, "POST", "/reset", body, now); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify with another public key = %v, want ErrSignature", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	s := specSigner(t)
	otherKeyID, err := NewHMACSigner("gw2", specKey(t), zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  func(t *testing.T) request
		now  time.Time
		want error
	}{
		{"tampered method", func(*testing.T) request { r := specRequest(); r.method = "PUT"; return r }, specNow, ErrSignature},
		{"tampered path", func(*testing.T) request { r := specRequest(); r.path = "/api/delete-account"; return r }, specNow, ErrSignature},
		{"empty path", func(*testing.T) request { r := specRequest(); r.path = ""; return r }, specNow, ErrSignature},
		{"tampered body", func(*testing.T) request { r := specRequest(); r.body = []byte(`{"password":"pwned"}`); return r }, specNow, ErrDigest},
		{"tampered body and digest", func(*testing.T) request {
			r := specRequest()
			r.body = []byte(`{"password":"pwned"}`)
			r.h.Set(HeaderContentDigest, ContentDigest(r.body))
			return r
		}, specNow, ErrSignature},
		{"digest without sha-256", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderContentDigest, "sha-512=:AAAA:")
			return r
		}, specNow, ErrDigest},
		{"digest not a byte sequence", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderContentDigest, `sha-256="x"`)
			return r
		}, specNow, ErrMalformed},
		{"tampered account", func(*testing.T) request { r := specRequest(); r.h.Set(HeaderAccount, "mallory@example.com"); return r }, specNow, ErrSignature},
		{"second account", func(*testing.T) request { r := specRequest(); r.h.Add(HeaderAccount, "mallory@example.com"); return r }, specNow, ErrMalformed},
		{"account stripped", func(*testing.T) request { r := specRequest(); r.h.Del(HeaderAccount); return r }, specNow, ErrMissingHeader},
		{"digest stripped", func(*testing.T) request { r := specRequest(); r.h.Del(HeaderContentDigest); return r }, specNow, ErrMissingHeader},
		{"signature stripped", func(*testing.T) request { r := specRequest(); r.h.Del(HeaderSignature); return r }, specNow, ErrNoSignature},
		{"signature input stripped", func(*testing.T) request { r := specRequest(); r.h.Del(HeaderSignatureInput); return r }, specNow, ErrNoSignature},
		{"other label only", sigInputWith("recovery=", "other="), specNow, ErrNoSignature},
		{"signature not bytes", func(*testing.T) request { r := specRequest(); r.h.Set(HeaderSignature, `recovery="x"`); return r }, specNow, ErrMalformed},
		{"signature input not a list", func(*testing.T) request { r := specRequest(); r.h.Set(HeaderSignatureInput, `recovery="x"`); return r }, specNow, ErrMalformed},
		{"signature input unparsable", func(*testing.T) request { r := specRequest(); r.h.Set(HeaderSignatureInput, `recovery=(`); return r }, specNow, ErrMalformed},
		{"flipped signature bit", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderSignature, "recovery=:/jkLS3WANVWmYoE0n5izAmxVkAS2CSaBYrJi/ryOAsI=:")
			return r
		}, specNow, ErrSignature},
		{"truncated signature", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderSignature, "recovery=:/jkLS3WA:")
			return r
		}, specNow, ErrSignature},
		{"expired", func(*testing.T) request { return specRequest() }, time.Unix(specExpires+61, 0), ErrExpired},
		{"created in the future", func(*testing.T) request { return specRequest() }, time.Unix(specCreated-61, 0), ErrNotYetValid},
		{"wrong keyid", func(t *testing.T) request { return signed(t, otherKeyID, specCreated, specExpires, specNonce) }, specNow, ErrKeyID},
		{"wrong alg", sigInputWith(`alg="hmac-sha256"`, `alg="ed25519"`), specNow, ErrAlg},
		{"missing alg", sigInputWith(`;alg="hmac-sha256"`, ``), specNow, ErrAlg},
		{"wrong tag", sigInputWith(`tag="sms-recovery"`, `tag="other"`), specNow, ErrTag},
		{"missing nonce", sigInputWith(`;nonce="bm9uY2UtMDAx"`, ``), specNow, ErrMalformed},
		{"created not an integer", sigInputWith(`created=1767225600`, `created="1767225600"`), specNow, ErrMalformed},
		{"window over 60s", func(t *testing.T) request { return signed(t, s, specCreated, specCreated+61, specNonce) }, specNow, ErrMalformed},
		{"expires before created", func(t *testing.T) request { return signed(t, s, specCreated, specCreated-1, specNonce) }, specNow, ErrMalformed},
		{"long nonce", func(t *testing.T) request { return signed(t, s, specCreated, specExpires, strings.Repeat("n", 129)) }, specNow, ErrMalformed},
		{"component missing", sigInputWith(` "x-recovery-account"`, ``), specNow, ErrComponents},
		{"component with parameters", sigInputWith(`"content-digest"`, `"content-digest";sf`), specNow, ErrComponents},
		{"unsupported derived component", sigInputWith(`"@path"`, `"@path" "@authority"`), specNow, ErrComponents},
		{"upper-case field name", sigInputWith(`"@path"`, `"@path" "Content-Type"`), specNow, ErrComponents},
		{"component twice", sigInputWith(`"@path"`, `"@path" "@path"`), specNow, ErrMalformed},
		{"extra covered header missing", sigInputWith(`"@path"`, `"@path" "x-missing"`), specNow, ErrMissingHeader},
		{"newline in path", func(*testing.T) request { r := specRequest(); r.path += "\n\"x\": y"; return r }, specNow, ErrMalformed},
		{"empty account", func(*testing.T) request { r := specRequest(); r.h.Set(HeaderAccount, " "); return r }, specNow, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newSpecVerifier(t)
			r := tt.req(t)
			account, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %q, %v; want %v", account, err, tt.want)
			}
			if account != "" {
				t.Errorf("account = %q on error", account)
			}
			// A refused request must not use up its nonce.
			good := specRequest()
			if _, err := v.Verify(t.Context(), good.h, good.method, good.path, good.body, specNow); err != nil {
				t.Errorf("valid request after the refused one: %v", err)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	s := specSigner(t)
	tests := []struct {
		name string
		req  func(t *testing.T) request
		now  time.Time
	}{
		{"at created", func(*testing.T) request { return specRequest() }, time.Unix(specCreated, 0)},
		{"clock behind by max skew", func(*testing.T) request { return specRequest() }, time.Unix(specCreated-60, 0)},
		{"clock ahead by max skew", func(*testing.T) request { return specRequest() }, time.Unix(specExpires+60, 0)},
		{"zero-length window", func(t *testing.T) request { return signed(t, s, specCreated, specCreated, specNonce) }, specNow},
		{"other signatures beside it", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderSignatureInput, `proxy=("@method");created=1;keyid="p", `+specSigInput)
			r.h.Add(HeaderSignature, "proxy=:AAAA:")
			return r
		}, specNow},
		{"several Signature-Input lines", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderSignatureInput, strings.Replace(specSigInput, "recovery=", "other=", 1))
			r.h.Add(HeaderSignatureInput, specSigInput)
			return r
		}, specNow},
		{"surrounding white space", func(*testing.T) request {
			r := specRequest()
			r.h.Set(HeaderAccount, "  "+specAccount+"\t")
			r.h.Set(HeaderSignatureInput, " "+specSigInput)
			return r
		}, specNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.req(t)
			account, err := newSpecVerifier(t).Verify(t.Context(), r.h, r.method, r.path, r.body, tt.now)
			if err != nil || account != specAccount {
				t.Fatalf("Verify = %q, %v; want %q", account, err, specAccount)
			}
		})
	}
}

func TestVerifyMaxSkew(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(VerifierConfig{KeyID: specKeyID, HMACKey: specKey(t), MaxSkew: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := specRequest()
	if _, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, time.Unix(specExpires+6, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("6s after expires: %v, want ErrExpired", err)
	}
	if _, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, time.Unix(specCreated-6, 0)); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("6s before created: %v, want ErrNotYetValid", err)
	}
	if _, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, time.Unix(specExpires+5, 0)); err != nil {
		t.Errorf("5s after expires: %v", err)
	}
}

func TestVerifyConcurrentReplay(t *testing.T) {
	t.Parallel()
	v := newSpecVerifier(t)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			r := specRequest()
			_, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrReplay):
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Errorf("%d of 16 concurrent copies accepted, want 1", n)
	}
}

func TestVerifierSharedNonceCache(t *testing.T) {
	t.Parallel()
	nonces, err := NewNonceCache(10)
	if err != nil {
		t.Fatal(err)
	}
	cfg := VerifierConfig{KeyID: specKeyID, HMACKey: specKey(t), Nonces: nonces}
	v1, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := specRequest()
	if _, err := v1.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); !errors.Is(err, ErrReplay) {
		t.Errorf("replay on a verifier sharing the cache: %v, want ErrReplay", err)
	}
}

func TestVerifyNonceCacheFull(t *testing.T) {
	t.Parallel()
	nonces, err := NewNonceCache(1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{KeyID: specKeyID, HMACKey: specKey(t), Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	s := specSigner(t)
	first := signed(t, s, specCreated, specExpires, "n1")
	second := signed(t, s, specCreated, specExpires, "n2")
	if _, err := v.Verify(t.Context(), first.h, first.method, first.path, first.body, specNow); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), second.h, second.method, second.path, second.body, specNow); !errors.Is(err, ErrNonceCacheFull) || !errors.Is(err, ErrNonceStore) {
		t.Fatalf("second request with a full cache: %v, want ErrNonceCacheFull within ErrNonceStore", err)
	}
	// Once the first nonce's window has closed, its slot is free again.
	later := time.Unix(specExpires+61, 0)
	third := signed(t, s, later.Unix(), later.Unix()+60, "n3")
	if _, err := v.Verify(t.Context(), third.h, third.method, third.path, third.body, later); err != nil {
		t.Fatalf("request after the window closed: %v", err)
	}
}

// downStore is a NonceStore whose server does not answer. It records the
// claims it was asked for.
type downStore struct {
	mu     sync.Mutex
	claims []string
}

var errStoreDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (s *downStore) Claim(_ context.Context, keyID, nonce string, _, _ time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims = append(s.claims, keyID+" "+nonce)
	return false, errStoreDown
}

// TestVerifyNonceStoreDown: a store that cannot answer fails the request
// closed, with ErrNonceStore and not ErrReplay, and only requests whose
// signature verified reach the store.
func TestVerifyNonceStoreDown(t *testing.T) {
	t.Parallel()
	store := &downStore{}
	v, err := NewVerifier(VerifierConfig{KeyID: specKeyID, HMACKey: specKey(t), Nonces: store})
	if err != nil {
		t.Fatal(err)
	}
	r := specRequest()
	account, err := v.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow)
	if account != "" || !errors.Is(err, ErrNonceStore) || !errors.Is(err, errStoreDown) || errors.Is(err, ErrReplay) {
		t.Fatalf("Verify = %q, %v; want ErrNonceStore wrapping the store's error", account, err)
	}
	forged := specRequest()
	forged.h.Set(HeaderAccount, "mallory@example.com")
	if _, err := v.Verify(t.Context(), forged.h, forged.method, forged.path, forged.body, specNow); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged request: %v, want ErrSignature", err)
	}
	if want := []string{specKeyID + " " + specNonce}; !slices.Equal(store.claims, want) {
		t.Errorf("store was asked for %q, want only %q", store.claims, want)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	key := specKey(t)
	tests := []struct {
		name string
		cfg  VerifierConfig
		want string
	}{
		{"no key", VerifierConfig{KeyID: "gw1"}, "no hmac key"},
		{"both keys", VerifierConfig{KeyID: "gw1", HMACKey: key, PublicKey: pub}, "want one"},
		{"short hmac key", VerifierConfig{KeyID: "gw1", HMACKey: key[:32]}, "32 bytes"},
		{"short public key", VerifierConfig{KeyID: "gw1", PublicKey: pub[:31]}, "31 bytes"},
		{"no key id", VerifierConfig{HMACKey: key}, "key id"},
		{"negative skew", VerifierConfig{KeyID: "gw1", HMACKey: key, MaxSkew: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVerifier = %v, %v; want error containing %q", v, err, tt.want)
			}
		})
	}
}

func TestVerifyErrorsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	r := specRequest()
	r.h.Set(HeaderSignature, "recovery=:/jkLS3WANVWmYoE0n5izAmxVkAS2CSaBYrJi/ryOAsI=:")
	_, err := newSpecVerifier(t).Verify(t.Context(), r.h, r.method, r.path, r.body, specNow)
	if err == nil {
		t.Fatal("Verify succeeded")
	}
	for _, secret := range []string{specKeyB64, "/jkLS3WA", "N3w-s3cret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	v := newSpecVerifier(b)
	body := []byte(specBody)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := specRequest()
		for pb.Next() {
			// All but the first call go through every check and stop at
			// the nonce, so this measures the full cost.
			if _, err := v.Verify(b.Context(), r.h, r.method, r.path, body, specNow); err != nil && !errors.Is(err, ErrReplay) {
				b.Fatal(err)
			}
		}
	})
}
