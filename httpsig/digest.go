package httpsig

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/dunglas/httpsfv"
)

// ContentDigest returns the RFC 9530 Content-Digest field value of body with
// the sha-256 algorithm: "sha-256=:<base64 of SHA-256(body)>:".
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// checkContentDigest checks that the Content-Digest field value has a
// sha-256 member that matches body. Other algorithms are ignored, as RFC 9530
// allows; a field without sha-256 fails.
func checkContentDigest(value string, body []byte) error {
	d, err := httpsfv.UnmarshalDictionary([]string{value})
	if err != nil {
		return fmt.Errorf("%w: content-digest: %v", ErrMalformed, err)
	}
	m, ok := d.Get("sha-256")
	if !ok {
		return fmt.Errorf("%w: no sha-256 member", ErrDigest)
	}
	it, _ := m.(httpsfv.Item)
	got, ok := it.Value.([]byte)
	if !ok {
		return fmt.Errorf("%w: content-digest: sha-256 is not a byte sequence", ErrMalformed)
	}
	want := sha256.Sum256(body)
	if !bytes.Equal(got, want[:]) {
		return fmt.Errorf("%w: body does not match content-digest", ErrDigest)
	}
	return nil
}
