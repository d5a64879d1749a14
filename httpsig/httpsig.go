package httpsig

import (
	"errors"
	"net/http"
	"time"
)

// The fixed parts of the signature (SPEC §6).
const (
	// Label is the signature's label in Signature-Input and Signature.
	Label = "recovery"
	// Tag is the value of the signature's tag parameter.
	Tag = "sms-recovery"
	// AlgHMACSHA256 is the alg of signatures made with a shared key.
	AlgHMACSHA256 = "hmac-sha256"
	// AlgEd25519 is the alg of signatures made with an ed25519 key.
	AlgEd25519 = "ed25519"
	// MaxValidity is the longest time between created and expires.
	MaxValidity = 60 * time.Second
	// MinHMACKeySize is the shortest hmac-sha256 key accepted, in bytes:
	// SPEC §3 asks for 64 random bytes, the block size of SHA-256.
	MinHMACKeySize = 64
)

// Header names the signature sets.
const (
	HeaderAccount        = "X-Recovery-Account"
	HeaderContentDigest  = "Content-Digest"
	HeaderSignature      = "Signature"
	HeaderSignatureInput = "Signature-Input"
)

// Why a Verifier refuses a request. Verify wraps one of them with details.
var (
	// ErrNoSignature is a request without a "recovery" member in
	// Signature-Input or Signature.
	ErrNoSignature = errors.New("no recovery signature")
	// ErrMalformed is a signature header, parameter or covered value that
	// cannot be parsed or breaks the rules of SPEC §6.
	ErrMalformed = errors.New("malformed signature")
	// ErrMissingHeader is a covered header field that the request lacks.
	ErrMissingHeader = errors.New("covered header missing")
	// ErrComponents is a signature that does not cover the four components
	// of SPEC §6, or covers one this package cannot derive.
	ErrComponents = errors.New("wrong covered components")
	// ErrTag is a missing tag or one other than Tag.
	ErrTag = errors.New("wrong signature tag")
	// ErrKeyID is a missing keyid or one the Verifier does not hold.
	ErrKeyID = errors.New("unknown key id")
	// ErrAlg is a missing alg or one that does not match the key.
	ErrAlg = errors.New("wrong signature algorithm")
	// ErrNotYetValid is a created time further in the future than the
	// tolerated clock skew.
	ErrNotYetValid = errors.New("signature not yet valid")
	// ErrExpired is an expires time further in the past than the tolerated
	// clock skew.
	ErrExpired = errors.New("signature expired")
	// ErrDigest is a body that does not match its Content-Digest.
	ErrDigest = errors.New("content digest mismatch")
	// ErrSignature is a signature that does not verify with the key.
	ErrSignature = errors.New("invalid signature")
	// ErrReplay is a nonce that was already accepted and is still in its
	// validity window.
	ErrReplay = errors.New("nonce replayed")
	// ErrNonceStore is a valid request refused because the NonceStore
	// could not say whether its nonce is new: a Redis server that does not
	// answer, or a full NonceCache. The request is not let through; the
	// same request may pass once the store answers again.
	ErrNonceStore = errors.New("nonce store unavailable")
	// ErrNonceCacheFull is what a NonceCache answers, wrapped in
	// ErrNonceStore by Verify, when every slot holds a nonce still in its
	// window; accepting another would mean forgetting one, which would
	// allow its replay.
	ErrNonceCacheFull = errors.New("nonce cache full")
)

// Strip removes the header fields the signature sets, so that none a client
// sent can reach the upstream. SPEC §6 requires it on every request the
// gateway sees.
func Strip(h http.Header) {
	h.Del(HeaderAccount)
	h.Del(HeaderContentDigest)
	h.Del(HeaderSignature)
	h.Del(HeaderSignatureInput)
}
