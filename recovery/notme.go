package recovery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The "this wasn't me" link of a reset notice: <public_url><path_prefix>/not-me?t=<token>.
// Its token says which account it locks and until when it works, and is
// signed with the keyring, so that the gateway keeps nothing until it is
// used; the store then remembers it as used until it would have expired.
var (
	// ErrInvalidLink is a not-me token that is malformed or whose
	// signature does not hold: forged, altered, or made under a secret
	// this gateway no longer has.
	ErrInvalidLink = errors.New("invalid not-me link")
	// ErrLinkExpired is a not-me token past its lifetime.
	ErrLinkExpired = errors.New("not-me link expired")
	// ErrLinkUsed is a not-me token that was used already.
	ErrLinkUsed = errors.New("not-me link used")
)

// notMeLabel separates the signatures of not-me tokens from every other
// hash keyed with the same secrets.
const notMeLabel = "sms-recovery not-me\x00"

const (
	notMeNonceBytes = 16 // 128 bits: the token's identity in the store
	notMeMACBytes   = 32
	notMeHeader     = notMeNonceBytes + 8 // nonce and expiry, before the account
	// maxNotMeLen bounds what is decoded: a 254-character account, in
	// UTF-8 up to 4 bytes a character, and the rest, in base64 (1431).
	maxNotMeLen = 1500
)

// notMeMAC signs payload under secret i, bound to the keyring's realm.
func (k *Keyring) notMeMAC(i int, payload []byte) []byte {
	m := hmac.New(sha256.New, k.secrets[i])
	io.WriteString(m, notMeLabel)
	io.WriteString(m, k.realm)
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// NotMe is what a valid not-me token says.
type NotMe struct {
	Account   string
	ExpiresAt time.Time
	// Key names the token in the store (Store.UseOnce): a hash of its
	// nonce and realm, never the token itself.
	Key string
}

// NotMeToken returns a signed not-me token for account, valid until
// expires, made unique by nonce (16 random bytes): base64url of the nonce,
// the expiry in Unix seconds and the account, a dot, and base64url of
// HMAC-SHA256 under the newest secret.
func (k *Keyring) NotMeToken(account string, expires time.Time, nonce []byte) string {
	payload := make([]byte, notMeHeader, notMeHeader+len(account))
	copy(payload, nonce)
	binary.BigEndian.PutUint64(payload[notMeNonceBytes:], uint64(expires.Unix()))
	payload = append(payload, account...)
	return base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(k.notMeMAC(0, payload))
}

// OpenNotMe checks a not-me token's signature under every secret, in time
// that does not depend on where it differs, and returns what it says:
// ErrInvalidLink for a malformed or forged token. It does not check the
// expiry: the caller does, against its clock.
func (k *Keyring) OpenNotMe(token string) (NotMe, error) {
	if len(token) > maxNotMeLen {
		return NotMe{}, ErrInvalidLink
	}
	p, s, ok := strings.Cut(token, ".")
	if !ok {
		return NotMe{}, ErrInvalidLink
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sig, err2 := base64.RawURLEncoding.DecodeString(s)
	if err1 != nil || err2 != nil || len(payload) <= notMeHeader || len(sig) != notMeMACBytes {
		return NotMe{}, ErrInvalidLink
	}
	match := 0
	for i := range k.secrets {
		match |= subtle.ConstantTimeCompare(k.notMeMAC(i, payload), sig)
	}
	if match != 1 {
		return NotMe{}, ErrInvalidLink
	}
	key := sha256.Sum256(append([]byte(k.realm+"\x00"), payload[:notMeNonceBytes]...))
	return NotMe{
		Account:   string(payload[notMeHeader:]),
		ExpiresAt: time.Unix(int64(binary.BigEndian.Uint64(payload[notMeNonceBytes:])), 0).UTC(),
		Key:       "notme:" + hex.EncodeToString(key[:16]),
	}, nil
}

// notMeLink returns a new not-me link for account, valid for the
// configured lifetime, or "" when notices carry none.
func (s *Service) notMeLink(account string) (string, error) {
	if s.cfg.NotMeTTL <= 0 || s.cfg.PublicURL == "" {
		return "", nil
	}
	base, _, err := s.link(s.cfg.PublicURL)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, notMeNonceBytes)
	if _, err := io.ReadFull(s.Rand, nonce); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	token := s.Keys.NotMeToken(account, s.Clock.Now().Add(s.cfg.NotMeTTL), nonce)
	return strings.TrimSuffix(base, "/?flow=") + NotMePath + "?t=" + token, nil
}

// NotMePath is the route of the not-me page, below the path prefix.
const NotMePath = "/not-me"

// CheckNotMe reads a not-me token without using it, for the page that asks
// to confirm: ErrInvalidLink, ErrLinkExpired or ErrLinkUsed, or what it
// says. It changes nothing, so that a mail scanner that follows the link
// locks nothing.
func (s *Service) CheckNotMe(ctx context.Context, token string) (NotMe, error) {
	n, err := s.openNotMe(token)
	if err != nil {
		return NotMe{}, err
	}
	used, err := s.Store.Used(ctx, n.Key)
	switch {
	case err != nil:
		return NotMe{}, unavailable("reading not-me link", err)
	case used:
		return NotMe{}, ErrLinkUsed
	}
	return n, nil
}

func (s *Service) openNotMe(token string) (NotMe, error) {
	n, err := s.Keys.OpenNotMe(token)
	if err != nil {
		return NotMe{}, err
	}
	if !s.Clock.Now().Before(n.ExpiresAt) {
		return NotMe{}, ErrLinkExpired
	}
	return n, nil
}

// Locker locks an account's recovery as support does (limiter.Guard's
// Impose): for d, or until support lifts it when d is 0.
type Locker interface {
	Impose(ctx context.Context, account string, d time.Duration) (Lock, bool, error)
}

// Disputed is the outcome of a not-me link used.
type Disputed struct {
	Account string
	Lock    Lock
}

// EventResetDisputed is the owner of an account telling, through the link
// of a reset notice, that a reset was not theirs: the account's recovery
// is locked until support lifts it.
const EventResetDisputed = "reset_disputed"

// Dispute uses a not-me token: it locks the account's recovery until
// support lifts it, as support's own lock does, and reports
// EventResetDisputed. A token is used at most once, across every instance
// that shares the store: of concurrent uses one locks and reports, the
// others get ErrLinkUsed. A malformed, forged, expired or used token
// changes nothing. When the lock or the store fails, the token stays
// unused (ErrUnavailable), so that the owner can try again.
func (s *Service) Dispute(ctx context.Context, token, clientIP string) (Disputed, error) {
	if s.Locker == nil {
		return Disputed{}, ErrInvalidLink
	}
	n, err := s.openNotMe(token)
	if err != nil {
		return Disputed{}, err
	}
	// A used token must not lock again an account support has since
	// unlocked; the lock goes before the token is marked used, so that a
	// failing lock leaves the token for another try.
	used, err := s.Store.Used(ctx, n.Key)
	switch {
	case err != nil:
		return Disputed{}, unavailable("reading not-me link", err)
	case used:
		return Disputed{}, ErrLinkUsed
	}
	lock, _, err := s.Locker.Impose(ctx, n.Account, 0)
	if err != nil {
		return Disputed{}, unavailable("locking account", err)
	}
	first, err := s.Store.UseOnce(ctx, n.Key, n.ExpiresAt)
	switch {
	case err != nil:
		return Disputed{}, unavailable("using not-me link", err)
	case !first:
		return Disputed{}, ErrLinkUsed
	}
	s.Observer.Observe(ctx, Event{Name: EventResetDisputed, Account: n.Account, ClientIP: clientIP,
		Scope: "lockout", Reason: "the owner says the reset was not theirs: recovery locked until support lifts it"})
	return Disputed{Account: n.Account, Lock: lock}, nil
}
