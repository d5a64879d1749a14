package httpsig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// VerifierSet checks a signed forward against whichever of several gateway
// keys its keyid names, so that the gateway's key can rotate without a
// moment in which resets fail: the upstream accepts the old and the new key
// while the gateway switches, then drops the old one. Give its Verifiers
// one NonceStore, so that a request accepted under one key is a replay
// under every other. It is safe for concurrent use.
type VerifierSet struct {
	verifiers []*Verifier
}

// NewVerifierSet returns a set of the verifiers, which must have distinct
// key IDs.
func NewVerifierSet(verifiers ...*Verifier) (*VerifierSet, error) {
	if len(verifiers) == 0 {
		return nil, errors.New("a verifier set needs at least one verifier")
	}
	seen := map[string]bool{}
	for _, v := range verifiers {
		if seen[v.keyID] {
			return nil, fmt.Errorf("key id %q given twice", v.keyID)
		}
		seen[v.keyID] = true
	}
	return &VerifierSet{verifiers: verifiers}, nil
}

// Verify checks the request with the verifier of its keyid and returns the
// account, as Verifier.Verify does. A keyid that no verifier has is
// ErrKeyID.
func (s *VerifierSet) Verify(ctx context.Context, h http.Header, method, path string, body []byte, now time.Time) (string, error) {
	var err error
	for _, v := range s.verifiers {
		var account string
		// A verifier refuses another key's signature at its keyid check,
		// before the window, the digest, the signature or the nonce: only
		// the verifier of the request's key gets that far.
		if account, err = v.Verify(ctx, h, method, path, body, now); err == nil || !errors.Is(err, ErrKeyID) {
			return account, err
		}
	}
	return "", err
}
