package httpsig_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
)

// The gateway signs the forwarded reset; the upstream verifies it, once.
func Example() {
	key := make([]byte, httpsig.MinHMACKeySize) // in production: 64 random bytes, shared by both sides
	signer, err := httpsig.NewHMACSigner("gw1", key, rand.Reader)
	if err != nil {
		panic(err)
	}
	verifier, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", HMACKey: key})
	if err != nil {
		panic(err)
	}

	// Gateway side.
	body := []byte(`{"password":"N3w-s3cret!"}`)
	h := http.Header{"Content-Type": {"application/json"}}
	now := time.Now()
	if err := signer.Sign(h, http.MethodPost, "/api/reset-password", body, "alice@example.com", now); err != nil {
		panic(err)
	}
	fmt.Println(h.Get("Content-Digest"))

	// Upstream side, a second later.
	account, err := verifier.Verify(context.Background(), h, http.MethodPost, "/api/reset-password", body, now.Add(time.Second))
	fmt.Println(account, err)

	_, err = verifier.Verify(context.Background(), h, http.MethodPost, "/api/reset-password", body, now.Add(2*time.Second))
	fmt.Println(errors.Is(err, httpsig.ErrReplay))
	// Output:
	// sha-256=:CFctwq1O4OyY2N07Cv+SoWEx2jDGAGy8rXdEzsYhnTk=:
	// alice@example.com <nil>
	// true
}
