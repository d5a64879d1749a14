package redisnonce_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig/redisnonce"
)

// An upstream that runs as several instances checks the gateway's signature
// with nonces kept in Redis, so that a signed reset is accepted once across
// all of them and across their restarts. A Redis that does not answer is a
// 503: the request is refused, not let through unchecked.
func Example() {
	opts, err := redis.ParseURL(os.Getenv("REDIS_URL")) // e.g. redis://127.0.0.1:6379/0
	if err != nil {
		panic(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()

	key := []byte(os.Getenv("RECOVERY_HMAC_KEY")) // the gateway's forward hmac_key, decoded
	verifier, err := httpsig.NewVerifier(httpsig.VerifierConfig{
		KeyID:   "gw1",
		HMACKey: key,
		Nonces:  redisnonce.New(client, "mail:"),
	})
	if err != nil {
		panic(err)
	}

	http.HandleFunc("POST /api/reset-password", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		account, err := verifier.Verify(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), body, time.Now())
		switch {
		case errors.Is(err, httpsig.ErrNonceStore):
			http.Error(w, "try again shortly", http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, "no valid gateway signature", http.StatusUnauthorized)
			return
		}
		_ = account // reset this account's password with body's fields
	})
}
