// Package redisnonce is an httpsig.NonceStore on a Redis server (or
// Sentinel, or Cluster), for a verifier that runs as several instances or
// must not forget accepted nonces when it restarts: every Verifier whose
// store has the same server and prefix accepts a signed request at most
// once between them (SPEC §6).
//
// It is a package of its own so that package httpsig brings no database
// client to the upstreams that do not want one. It imports httpsig's
// contract and go-redis, never Caddy or the rest of the project. It never
// logs; its errors hold no nonce value beyond the key it names, and no
// password.
package redisnonce

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
)

// DefaultPrefix starts every key when New is given no prefix. It is the
// gateway's default Redis prefix too; the keys do not collide.
const DefaultPrefix = "smsrec:"

// ClockMargin is how much longer than the Verifier asks a nonce is kept.
// Each verifier judges a signature's window by its own clock, and the key's
// time to live is counted from the clock of the one that claimed it: were
// another instance's clock behind, it would still accept the signature
// after the key had gone. The margin covers instances whose clocks differ
// by up to a minute, at the price of keeping each key a minute longer.
const ClockMargin = time.Minute

// Store keeps each claimed nonce as one key,
//
//	<prefix>nonce:<key id>:<nonce>
//
// written with SET NX and a time to live, so that the claim is atomic on
// the server whichever instance makes it, and the key goes by itself once
// the signature's window has closed. In the key ID, "%" and ":" are
// written %25 and %3A, so that the first ":" after "nonce:" ends it.
//
// Store is safe for concurrent use. It does not own the client: close the
// client when no Verifier uses the store any more.
type Store struct {
	client redis.UniversalClient
	prefix string
}

// New returns a store on client whose keys start with prefix ("" means
// DefaultPrefix). Verifiers that must refuse each other's replays use the
// same server and prefix.
func New(client redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: prefix}
}

var keyIDEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// Key returns the key a claim of nonce under keyID writes.
func (s *Store) Key(keyID, nonce string) string {
	return s.prefix + "nonce:" + keyIDEscaper.Replace(keyID) + ":" + nonce
}

// Claim implements httpsig.NonceStore with one SET <key> <claim> NX PX
// <ms>, the time to live being until - now + ClockMargin on the caller's
// clock, the one that judged the signature's window.
//
// A SET whose reply is lost may be sent again by the client and find its
// own key: so the key holds a random value of this claim, and when SET
// finds the key already there, Claim reads it (a second round trip, on the
// path of replays only) and reports true only if the value is its own.
//
// Any error from Redis is returned: the Verifier refuses the request.
func (s *Store) Claim(ctx context.Context, keyID, nonce string, until, now time.Time) (bool, error) {
	key := s.Key(keyID, nonce)
	claim := rand.Text()
	ttl := max(until.Sub(now), 0) + ClockMargin
	set, err := s.client.SetNX(ctx, key, claim, ttl).Result()
	switch {
	case err != nil:
		return false, fmt.Errorf("redis set %s: %w", key, err)
	case set:
		return true, nil
	}
	held, err := s.client.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		// Claimed by another request, and gone just now with its time to
		// live: a replay at the very end of its window.
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redis get %s: %w", key, err)
	}
	return held == claim, nil
}

// Interface guards
var _ httpsig.NonceStore = (*Store)(nil)
