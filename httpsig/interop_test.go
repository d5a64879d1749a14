package httpsig_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	rhttpsig "github.com/remitly-oss/httpsig-go"
	"github.com/remitly-oss/httpsig-go/types"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
)

// These tests check this package against an independent implementation of
// RFC 9421, github.com/remitly-oss/httpsig-go, in both directions and with
// both algorithms: what the gateway signs, it verifies; what it signs the
// way SPEC §6 says, the upstream's verifier here accepts.

// interopKeys is one key pair of each algorithm, under key ID "gw1".
type interopKeys struct {
	name string
	alg  rhttpsig.Algorithm
	// newSigner and newVerifier make a fresh signer and verifier of the key.
	newSigner   func() (*httpsig.Signer, error)
	newVerifier func() (*httpsig.Verifier, error)
	theirKey    rhttpsig.SigningKey
	theirs      rhttpsig.KeySpec
}

func (k interopKeys) signer(t *testing.T) *httpsig.Signer {
	t.Helper()
	s, err := k.newSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k interopKeys) verifier(t *testing.T) *httpsig.Verifier {
	t.Helper()
	v, err := k.newVerifier()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func interopCases(t *testing.T) []interopKeys {
	t.Helper()
	secret := bytes.Repeat([]byte{0x5a, 0xa5}, 32)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []interopKeys{
		{
			name:      "hmac-sha256",
			alg:       rhttpsig.Algo_HMAC_SHA256,
			newSigner: func() (*httpsig.Signer, error) { return httpsig.NewHMACSigner("gw1", secret, rand.Reader) },
			newVerifier: func() (*httpsig.Verifier, error) {
				return httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", HMACKey: secret})
			},
			theirKey: rhttpsig.SigningKey{Secret: secret, MetaKeyID: "gw1", MetaTag: httpsig.Tag},
			theirs:   rhttpsig.KeySpec{KeyID: "gw1", Algo: rhttpsig.Algo_HMAC_SHA256, Secret: secret},
		},
		{
			name:      "ed25519",
			alg:       rhttpsig.Algo_ED25519,
			newSigner: func() (*httpsig.Signer, error) { return httpsig.NewEd25519Signer("gw1", priv, rand.Reader) },
			newVerifier: func() (*httpsig.Verifier, error) {
				return httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", PublicKey: pub})
			},
			theirKey: rhttpsig.SigningKey{Key: priv, MetaKeyID: "gw1", MetaTag: httpsig.Tag},
			theirs:   rhttpsig.KeySpec{KeyID: "gw1", Algo: rhttpsig.Algo_ED25519, PubKey: pub},
		},
	}
}

// keyByID is the independent verifier's view of the gateway's one key.
type keyByID rhttpsig.KeySpec

func (k keyByID) FetchByKeyID(_ context.Context, _ http.Header, keyID string) (rhttpsig.KeySpecer, error) {
	if keyID != k.KeyID {
		return nil, errors.New("unknown key id")
	}
	return rhttpsig.KeySpec(k), nil
}

func (k keyByID) Fetch(context.Context, http.Header, types.MetadataProvider) (rhttpsig.KeySpecer, error) {
	return nil, errors.New("a keyid is required")
}

// spec6Profile is what SPEC §6 makes a signature cover and carry, as the
// independent implementation names it.
func spec6Profile(alg rhttpsig.Algorithm) rhttpsig.VerifyProfile {
	return rhttpsig.VerifyProfile{
		SignatureLabel:    "recovery",
		AllowedAlgorithms: []rhttpsig.Algorithm{alg},
		RequiredFields:    rhttpsig.Fields("@method", "@path", "content-digest", "x-recovery-account"),
		RequiredMetadata: []rhttpsig.Metadata{
			rhttpsig.MetaCreated, rhttpsig.MetaExpires, rhttpsig.MetaNonce,
			rhttpsig.MetaKeyID, rhttpsig.MetaAlgorithm, rhttpsig.MetaTag,
		},
		CreatedValidDuration: time.Minute,
	}
}

func interopRequest(t *testing.T, body, account string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://mail.example.com/api/reset-password", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(httpsig.HeaderAccount, account)
	return r
}

func TestInteropOurSignatureTheirVerifier(t *testing.T) {
	t.Parallel()
	for _, c := range interopCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const body = `{"password":"N3w-s3cret!"}`
			r := interopRequest(t, body, "alice@example.com")
			if err := c.signer(t).Sign(r.Header, r.Method, r.URL.EscapedPath(), []byte(body), "alice@example.com", time.Now()); err != nil {
				t.Fatal(err)
			}
			res, err := rhttpsig.Verify(r, keyByID(c.theirs), spec6Profile(c.alg))
			if err != nil || !res.Verified {
				t.Fatalf("the independent verifier refused our signature: %v (Signature-Input %s)", err, r.Header.Get("Signature-Input"))
			}
			if tag, _ := res.Tag(); tag != httpsig.Tag {
				t.Errorf("tag %q, want %q", tag, httpsig.Tag)
			}

			// A changed body or account no longer verifies there either.
			tampered := interopRequest(t, `{"password":"other"}`, "alice@example.com")
			tampered.Header = r.Header.Clone()
			if res, err := rhttpsig.Verify(tampered, keyByID(c.theirs), spec6Profile(c.alg)); err == nil && res.Verified {
				t.Error("the independent verifier accepted a changed body")
			}
			other := interopRequest(t, body, "mallory@example.com")
			for _, h := range []string{"Signature", "Signature-Input", "Content-Digest"} {
				other.Header.Set(h, r.Header.Get(h))
			}
			if res, err := rhttpsig.Verify(other, keyByID(c.theirs), spec6Profile(c.alg)); err == nil && res.Verified {
				t.Error("the independent verifier accepted a changed account")
			}
		})
	}
}

func TestInteropTheirSignatureOurVerifier(t *testing.T) {
	t.Parallel()
	for _, c := range interopCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const body = `{"password":"N3w-s3cret!"}`
			sign := func(t *testing.T, r *http.Request) {
				t.Helper()
				err := rhttpsig.Sign(r, rhttpsig.SigningProfile{
					Algorithm: c.alg,
					Digest:    rhttpsig.DigestSHA256,
					Fields:    rhttpsig.Fields("@method", "@path", "content-digest", "x-recovery-account"),
					Metadata: []rhttpsig.Metadata{
						rhttpsig.MetaCreated, rhttpsig.MetaExpires, rhttpsig.MetaNonce,
						rhttpsig.MetaKeyID, rhttpsig.MetaAlgorithm, rhttpsig.MetaTag,
					},
					Label:           "recovery",
					ExpiresDuration: 30 * time.Second,
					Nonce:           rhttpsig.NonceRandom32,
				}, c.theirKey)
				if err != nil {
					t.Fatal(err)
				}
			}
			r := interopRequest(t, body, "alice@example.com")
			sign(t, r)
			got, err := io.ReadAll(r.Body) // Sign read it for the digest and put it back
			if err != nil || string(got) != body {
				t.Fatalf("body after signing %q, %v", got, err)
			}

			v := c.verifier(t)
			account, err := v.Verify(t.Context(), r.Header, r.Method, r.URL.EscapedPath(), []byte(body), time.Now())
			if err != nil {
				t.Fatalf("our verifier refused the independent signature: %v (Signature-Input %s)", err, r.Header.Get("Signature-Input"))
			}
			if account != "alice@example.com" {
				t.Errorf("account %q, want alice@example.com", account)
			}
			if _, err := v.Verify(t.Context(), r.Header, r.Method, r.URL.EscapedPath(), []byte(body), time.Now()); !errors.Is(err, httpsig.ErrReplay) {
				t.Errorf("second use: %v, want ErrReplay", err)
			}

			fresh := interopRequest(t, body, "alice@example.com")
			sign(t, fresh)
			if _, err := c.verifier(t).Verify(t.Context(), fresh.Header, fresh.Method, fresh.URL.EscapedPath(), []byte(`{"password":"other"}`), time.Now()); err == nil {
				t.Error("our verifier accepted an independent signature over another body")
			}
			if _, err := c.verifier(t).Verify(t.Context(), fresh.Header, http.MethodPut, fresh.URL.EscapedPath(), []byte(body), time.Now()); err == nil {
				t.Error("our verifier accepted an independent signature under another method")
			}
		})
	}
}

// TestInteropSpecVector checks the test vector of SPEC §6 with the
// independent implementation: its signature verifies under the vector's key,
// with the clock checks off, since the vector was made at a fixed time.
func TestInteropSpecVector(t *testing.T) {
	t.Parallel()
	key := make([]byte, 64)
	for i := range key {
		key[i] = byte(i) // the vector's hmac_key, AAECAw...Pw==
	}
	r := interopRequest(t, `{"password":"N3w-s3cret!"}`, "alice@example.com")
	r.Header.Set("Content-Digest", "sha-256=:CFctwq1O4OyY2N07Cv+SoWEx2jDGAGy8rXdEzsYhnTk=:")
	r.Header.Set("Signature-Input", `recovery=("@method" "@path" "content-digest" "x-recovery-account");created=1767225600;expires=1767225660;nonce="bm9uY2UtMDAx";keyid="gw1";alg="hmac-sha256";tag="sms-recovery"`)
	r.Header.Set("Signature", "recovery=:/jkLS3WANVWmYoE0n5izAmxVkAS2CSaBYrJi/ryOAsM=:")
	profile := spec6Profile(rhttpsig.Algo_HMAC_SHA256)
	profile.DisableTimeEnforcement = true
	spec := rhttpsig.KeySpec{KeyID: "gw1", Algo: rhttpsig.Algo_HMAC_SHA256, Secret: key}
	if res, err := rhttpsig.Verify(r, keyByID(spec), profile); err != nil || !res.Verified {
		t.Fatalf("the independent verifier refused the SPEC §6 vector: %v", err)
	}
	r.Header.Set("Signature", "recovery=:/jkLS3WANVWmYoE0n5izAmxVkAS2CSaBYrJi/ryOBsM=:")
	if res, err := rhttpsig.Verify(r, keyByID(spec), profile); err == nil && res.Verified {
		t.Fatal("the independent verifier accepted a changed signature")
	}
}
