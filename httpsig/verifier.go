package httpsig

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// DefaultMaxSkew is the clock difference between gateway and upstream that
// a Verifier tolerates unless told otherwise.
const DefaultMaxSkew = 60 * time.Second

// maxNonceLen bounds what one nonce store entry can cost.
const maxNonceLen = 128

// requiredComponents are the components SPEC §6 says every signature covers.
var requiredComponents = [...]string{"@method", "@path", "content-digest", "x-recovery-account"}

// VerifierConfig configures a Verifier. Exactly one of HMACKey and PublicKey
// must be set.
type VerifierConfig struct {
	// KeyID is the keyid signatures must carry.
	KeyID string
	// HMACKey is the key shared with the gateway for alg hmac-sha256, at
	// least MinHMACKeySize bytes.
	HMACKey []byte
	// PublicKey is the gateway's public key for alg ed25519.
	PublicKey ed25519.PublicKey
	// MaxSkew is how far the gateway's clock may be off: a signature is
	// accepted from MaxSkew before its created time to MaxSkew after its
	// expires time. Zero means DefaultMaxSkew. A longer skew keeps a
	// captured request usable for longer, though never twice.
	MaxSkew time.Duration
	// Nonces remembers accepted nonces. Nil means a new NonceCache of
	// DefaultNonceCacheSize for this Verifier alone, which a replay to
	// another process, or to this one after a restart, gets past once
	// more. Share one store between Verifiers that must not accept each
	// other's replays: the old and new ones across a configuration reload,
	// and, with a store such as redisnonce, every instance of the upstream.
	Nonces NonceStore
}

// Verifier checks signed forwards from one gateway key. It is safe for
// concurrent use.
type Verifier struct {
	keyID   string
	alg     string
	verify  func(base, sig []byte) bool
	maxSkew time.Duration
	nonces  NonceStore
}

// NewVerifier returns a Verifier for c.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	if err := checkKeyID(c.KeyID); err != nil {
		return nil, err
	}
	v := &Verifier{keyID: c.KeyID, maxSkew: c.MaxSkew, nonces: c.Nonces}
	switch {
	case len(c.HMACKey) > 0 && len(c.PublicKey) > 0:
		return nil, errors.New("both an hmac key and an ed25519 public key given; want one")
	case len(c.HMACKey) > 0:
		if len(c.HMACKey) < MinHMACKeySize {
			return nil, fmt.Errorf("hmac key has %d bytes, want at least %d", len(c.HMACKey), MinHMACKeySize)
		}
		key := append([]byte(nil), c.HMACKey...)
		v.alg = AlgHMACSHA256
		v.verify = func(base, sig []byte) bool {
			return hmac.Equal(hmacSHA256(key, base), sig)
		}
	case len(c.PublicKey) > 0:
		if len(c.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 public key has %d bytes, want %d", len(c.PublicKey), ed25519.PublicKeySize)
		}
		key := append(ed25519.PublicKey(nil), c.PublicKey...)
		v.alg = AlgEd25519
		v.verify = func(base, sig []byte) bool {
			return ed25519.Verify(key, base, sig)
		}
	default:
		return nil, errors.New("no hmac key or ed25519 public key given")
	}
	switch {
	case v.maxSkew < 0:
		return nil, fmt.Errorf("max skew %s is negative", v.maxSkew)
	case v.maxSkew == 0:
		v.maxSkew = DefaultMaxSkew
	}
	if v.nonces == nil {
		nonces, err := NewNonceCache(DefaultNonceCacheSize)
		if err != nil {
			return nil, err
		}
		v.nonces = nonces
	}
	return v, nil
}

// Verify checks the "recovery" signature of a request and returns the
// account it vouches for. ctx bounds the call to the nonce store. h, method
// and path are the request's header,
// method and path as received (percent-encoded, without the query, like
// url.URL.EscapedPath); body is the whole body. now is the time to judge
// created and expires by.
//
// Verify checks, in this order: the signature fields, tag, keyid, alg, the
// covered components, the validity window, the Content-Digest against body,
// the signature itself, and last that the nonce is new, so that only
// requests with a valid signature take a place in the nonce store. Each
// failure wraps one of the Err* values of this package; the messages hold
// no key, signature or body. A store that cannot answer fails the request
// with ErrNonceStore: it is refused, never let through unchecked.
func (v *Verifier) Verify(ctx context.Context, h http.Header, method, path string, body []byte, now time.Time) (string, error) {
	input, err := labelled(h, HeaderSignatureInput)
	if err != nil {
		return "", err
	}
	sigMember, err := labelled(h, HeaderSignature)
	if err != nil {
		return "", err
	}
	il, ok := input.(httpsfv.InnerList)
	if !ok {
		return "", fmt.Errorf("%w: %s member is not an inner list", ErrMalformed, HeaderSignatureInput)
	}
	items := il.Items
	sigItem, _ := sigMember.(httpsfv.Item)
	sig, ok := sigItem.Value.([]byte)
	if !ok {
		return "", fmt.Errorf("%w: %s member is not a byte sequence", ErrMalformed, HeaderSignature)
	}

	if err := v.checkPolicy(il.Params); err != nil {
		return "", err
	}
	names, err := coveredNames(items)
	if err != nil {
		return "", err
	}
	expires, nonce, err := v.checkWindow(il.Params, now)
	if err != nil {
		return "", err
	}

	components := make([]component, len(names))
	for i, name := range names {
		value, err := componentValue(name, h, method, path)
		if err != nil {
			return "", err
		}
		components[i] = component{name: name, value: value}
		if name == "content-digest" {
			if err := checkContentDigest(value, body); err != nil {
				return "", err
			}
		}
	}
	account, err := recoveryAccount(h)
	if err != nil {
		return "", err
	}

	sigParams, err := serializeInnerList(il)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	base, err := signatureBase(components, sigParams)
	if err != nil {
		return "", err
	}
	if !v.verify(base, sig) {
		return "", fmt.Errorf("%w with key %q", ErrSignature, v.keyID)
	}
	fresh, err := v.nonces.Claim(ctx, v.keyID, nonce, expires.Add(v.maxSkew), now)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrNonceStore, err)
	case !fresh:
		return "", fmt.Errorf("%w: nonce %q", ErrReplay, nonce)
	}
	return account, nil
}

// labelled returns the "recovery" member of the dictionary field.
func labelled(h http.Header, field string) (httpsfv.Member, error) {
	values := h.Values(field)
	if len(values) == 0 {
		return nil, fmt.Errorf("%w: no %s field", ErrNoSignature, field)
	}
	d, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	m, ok := d.Get(Label)
	if !ok {
		return nil, fmt.Errorf("%w: no %q member in %s", ErrNoSignature, Label, field)
	}
	return m, nil
}

// checkPolicy checks the tag, keyid and alg parameters.
func (v *Verifier) checkPolicy(ps *httpsfv.Params) error {
	if tag, _ := stringParam(ps, "tag"); tag != Tag {
		return fmt.Errorf("%w: %q", ErrTag, tag)
	}
	if keyID, _ := stringParam(ps, "keyid"); keyID != v.keyID {
		return fmt.Errorf("%w: %q", ErrKeyID, keyID)
	}
	if alg, _ := stringParam(ps, "alg"); alg != v.alg {
		return fmt.Errorf("%w: %q for key %q", ErrAlg, alg, v.keyID)
	}
	return nil
}

// coveredNames returns the component identifiers of the inner list, after
// checking that they include the required ones, once each, and nothing this
// package cannot derive.
func coveredNames(items []httpsfv.Item) ([]string, error) {
	names := make([]string, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		name, ok := it.Value.(string)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: component identifier is not a string", ErrMalformed)
		case it.Params != nil && len(it.Params.Names()) > 0:
			return nil, fmt.Errorf("%w: component %q has parameters, which are not supported", ErrComponents, name)
		case seen[name]:
			return nil, fmt.Errorf("%w: component %q covered twice", ErrMalformed, name)
		case name != "@method" && name != "@path" && !isFieldName(name):
			return nil, fmt.Errorf("%w: component %q is not supported", ErrComponents, name)
		}
		seen[name] = true
		names[i] = name
	}
	for _, name := range requiredComponents {
		if !seen[name] {
			return nil, fmt.Errorf("%w: %q not covered", ErrComponents, name)
		}
	}
	return names, nil
}

// checkWindow checks created, expires and nonce, and returns when the
// signature expires and its nonce.
func (v *Verifier) checkWindow(ps *httpsfv.Params, now time.Time) (time.Time, string, error) {
	created, ok1 := intParam(ps, "created")
	expires, ok2 := intParam(ps, "expires")
	nonce, ok3 := stringParam(ps, "nonce")
	switch {
	case !ok1 || !ok2 || !ok3:
		return time.Time{}, "", fmt.Errorf("%w: created, expires and nonce are required", ErrMalformed)
	case nonce == "" || len(nonce) > maxNonceLen:
		return time.Time{}, "", fmt.Errorf("%w: nonce must have 1 to %d characters", ErrMalformed, maxNonceLen)
	case expires < created || expires-created > int64(MaxValidity/time.Second):
		return time.Time{}, "", fmt.Errorf("%w: expires must be 0 to %s after created", ErrMalformed, MaxValidity)
	}
	createdAt, expiresAt := time.Unix(created, 0), time.Unix(expires, 0)
	if now.Before(createdAt.Add(-v.maxSkew)) {
		return time.Time{}, "", fmt.Errorf("%w: created %s after now", ErrNotYetValid, createdAt.Sub(now).Round(time.Second))
	}
	if now.After(expiresAt.Add(v.maxSkew)) {
		return time.Time{}, "", fmt.Errorf("%w: %s ago", ErrExpired, now.Sub(expiresAt).Round(time.Second))
	}
	return expiresAt, nonce, nil
}

// componentValue derives the value of a covered component (RFC 9421 §2.1,
// §2.2): field values are trimmed and several lines joined with ", ".
func componentValue(name string, h http.Header, method, path string) (string, error) {
	switch name {
	case "@method":
		return method, nil
	case "@path":
		if path == "" {
			return "/", nil
		}
		return path, nil
	}
	values := h.Values(name)
	if len(values) == 0 {
		return "", fmt.Errorf("%w: %s", ErrMissingHeader, http.CanonicalHeaderKey(name))
	}
	trimmed := make([]string, len(values))
	for i, v := range values {
		trimmed[i] = strings.Trim(v, " \t")
	}
	return strings.Join(trimmed, ", "), nil
}

// recoveryAccount returns the one X-Recovery-Account value. Several would be
// joined into one signed value that names no account.
func recoveryAccount(h http.Header) (string, error) {
	values := h.Values(HeaderAccount)
	if len(values) != 1 {
		return "", fmt.Errorf("%w: %d %s fields, want 1", ErrMalformed, len(values), HeaderAccount)
	}
	account := strings.Trim(values[0], " \t")
	if account == "" {
		return "", fmt.Errorf("%w: empty %s", ErrMalformed, HeaderAccount)
	}
	return account, nil
}

// isFieldName accepts a lower-case HTTP token, the form RFC 9421 requires
// for field names in Signature-Input.
func isFieldName(s string) bool {
	return isToken(s) && strings.ToLower(s) == s
}

func stringParam(ps *httpsfv.Params, key string) (string, bool) {
	if ps == nil {
		return "", false
	}
	v, _ := ps.Get(key)
	s, ok := v.(string)
	return s, ok
}

func intParam(ps *httpsfv.Params, key string) (int64, bool) {
	if ps == nil {
		return 0, false
	}
	v, _ := ps.Get(key)
	n, ok := v.(int64)
	return n, ok
}
