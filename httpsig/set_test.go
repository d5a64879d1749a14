package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// TestVerifierSet accepts the signatures of both keys of a rotation, by
// keyid, refuses an unknown keyid and a signature made with the wrong key
// for its keyid, and shares one nonce cache across keys.
func TestVerifierSet(t *testing.T) {
	t.Parallel()
	nonces, err := NewNonceCache(10)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := specKey(t)
	newKey := bytes.Repeat([]byte{7}, 64)
	pub, priv, err := ed25519.GenerateKey(zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	vOld, err := NewVerifier(VerifierConfig{KeyID: "gw1", HMACKey: oldKey, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	vNew, err := NewVerifier(VerifierConfig{KeyID: "gw2", PublicKey: pub, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewVerifierSet(vOld, vNew)
	if err != nil {
		t.Fatal(err)
	}
	sOld, _ := NewHMACSigner("gw1", oldKey, zeroReader{})
	sNew, _ := NewEd25519Signer("gw2", priv, zeroReader{})
	sWrongKey, _ := NewHMACSigner("gw1", newKey, zeroReader{})
	sUnknown, _ := NewHMACSigner("gw9", oldKey, zeroReader{})

	for name, r := range map[string]request{
		"old key": signed(t, sOld, specCreated, specCreated+60, "bm9uY2UtMTAx"),
		"new key": signed(t, sNew, specCreated, specCreated+60, "bm9uY2UtMTAy"),
	} {
		if account, err := set.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); err != nil || account != specAccount {
			t.Errorf("%s: %q, %v; want accepted", name, account, err)
		}
		if _, err := set.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); !errors.Is(err, ErrReplay) {
			t.Errorf("%s replayed: %v, want ErrReplay", name, err)
		}
	}
	r := signed(t, sWrongKey, specCreated, specCreated+60, "bm9uY2UtMTAz")
	if _, err := set.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); !errors.Is(err, ErrSignature) {
		t.Errorf("gw1 signed with another key: %v, want ErrSignature", err)
	}
	r = signed(t, sUnknown, specCreated, specCreated+60, "bm9uY2UtMTA0")
	if _, err := set.Verify(t.Context(), r.h, r.method, r.path, r.body, specNow); !errors.Is(err, ErrKeyID) {
		t.Errorf("unknown keyid: %v, want ErrKeyID", err)
	}
	if _, err := NewVerifierSet(vOld, vOld); err == nil {
		t.Error("a set with one key id twice was accepted")
	}
	if _, err := NewVerifierSet(); err == nil {
		t.Error("an empty set was accepted")
	}
}
