package recovery

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"sync"
)

// MinSecretLen is the shortest secret accepted for keying hashes.
const MinSecretLen = 32

// Keyring holds the secrets that key the hashes of codes and tokens. The
// first secret hashes new values; every secret verifies, so that secrets can
// be rotated without killing the flows and tokens in flight.
//
// A realm further binds codes and tokens to where they may be spent: two
// gateways sharing a store and a secret but not a realm cannot use each
// other's flows or tokens.
type Keyring struct {
	secrets [][]byte
	realm   string
	// macs holds, for each secret, HMACs keyed with it to reuse: keying one
	// costs more than the hash, and /start hashes several times.
	macs []*sync.Pool
	// standIns is made once, on first use, and shared with InRealm's copies.
	standIns *standInSet
}

// standInSet is the stand-in numbers of a keyring.
type standInSet struct {
	once    sync.Once
	numbers []string
}

// StandIns is how many stand-in numbers a keyring draws from.
const StandIns = 1024

// keyedMAC is an HMAC-SHA256 under one secret and the buffer its input is
// gathered in, so that a hash is one Write and allocates nothing.
type keyedMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// mac returns the reusable HMAC of secret i, reset, with an empty buffer.
func (k *Keyring) mac(i int) *keyedMAC {
	return k.macs[i].Get().(*keyedMAC)
}

// done hashes what was gathered in m and returns m to its pool; the sum
// is returned by value, so nothing of m escapes.
func (k *Keyring) done(i int, m *keyedMAC) [sha256.Size]byte {
	m.h.Write(m.buf)
	sum := [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	m.h.Reset()
	m.buf = m.buf[:0]
	k.macs[i].Put(m)
	return sum
}

// NewKeyring returns a keyring over secrets, newest first.
func NewKeyring(secrets ...[]byte) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no secret")
	}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes, need at least %d", i+1, len(s), MinSecretLen)
		}
	}
	macs := make([]*sync.Pool, len(secrets))
	for i, secret := range secrets {
		macs[i] = &sync.Pool{New: func() any {
			return &keyedMAC{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, 128)}
		}}
	}
	return &Keyring{secrets: secrets, macs: macs, standIns: &standInSet{}}, nil
}

// InRealm returns a keyring with the same secrets whose code and token
// hashes are bound to realm.
func (k *Keyring) InRealm(realm string) *Keyring {
	return &Keyring{secrets: k.secrets, realm: realm, macs: k.macs, standIns: k.standIns}
}

func (k *Keyring) codeHash(i int, flowID, code string) []byte {
	m := k.mac(i)
	m.buf = append(m.buf, "sms-recovery code\x00"...)
	m.buf = append(m.buf, k.realm...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, flowID...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, code...)
	sum := k.done(i, m)
	return sum[:]
}

func (k *Keyring) tokenHash(i int, token string) []byte {
	m := k.mac(i)
	m.buf = append(m.buf, "sms-recovery token\x00"...)
	m.buf = append(m.buf, k.realm...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, token...)
	sum := k.done(i, m)
	return sum[:]
}

// PhoneKey returns a keyed hash of a phone number, so that counters kept
// per phone (in Redis, say) do not hold the number itself.
func (k *Keyring) PhoneKey(phone string) string {
	m := k.mac(0)
	m.buf = append(m.buf, "sms-recovery phone\x00"...)
	m.buf = append(m.buf, phone...)
	sum := k.done(0, m)
	return hex.EncodeToString(sum[:16])
}

// AccountRefLen is the length of an AccountRef, in hex digits.
const AccountRefLen = 16

// accountRefLabel separates the hash of an account for logs from every
// other hash keyed with the same secret (codes, tokens, phones, stand-ins),
// so that none can stand for another.
const accountRefLabel = "sms-recovery account log\x00"

// AccountRef returns what log lines and events name an account by: the
// first AccountRefLen hex digits of HMAC-SHA256 under the newest secret of
// accountRefLabel and the account as given (normalised, see
// NormalizeAccount). It is the same on every instance that shares the
// secret, whatever its realm, so that support can tie an account's lines
// together across instances and find them by hashing a known account;
// without the secret, it says nothing of the account, and names cannot be
// tried against it. A new newest secret gives every account a new one.
func (k *Keyring) AccountRef(account string) string {
	m := k.mac(0)
	m.buf = append(m.buf, accountRefLabel...)
	m.buf = append(m.buf, account...)
	sum := k.done(0, m)
	var out [AccountRefLen]byte
	hex.Encode(out[:], sum[:AccountRefLen/2])
	return string(out[:])
}

// StandInPhones returns the numbers StandInFromSet draws from: StandIns
// made-up Dutch mobile numbers, derived from the newest secret, which are
// never texted. They are fixed once the keyring exists, so that the phone
// policy can check them all before the first request (PhonePolicy.Pin in
// package directory) instead of parsing a new number for every unknown
// account. The slice must not be changed.
func (k *Keyring) StandInPhones() []string {
	k.standIns.once.Do(func() {
		numbers := make([]string, StandIns)
		var i [8]byte
		for n := range numbers {
			binary.BigEndian.PutUint64(i[:], uint64(n))
			m := hmac.New(sha256.New, k.secrets[0])
			io.WriteString(m, "sms-recovery stand-in set\x00")
			m.Write(i[:])
			sum := m.Sum(nil)
			numbers[n] = fmt.Sprintf("+316%08d", binary.BigEndian.Uint32(sum)%100_000_000)
		}
		k.standIns.numbers = numbers
	})
	return k.standIns.numbers
}

// StandInPhone returns a made-up Dutch mobile number for an account that
// has none, different for each account and stable for one, so that an
// unknown account's number costs the phone policy what a real one does,
// parsed when first seen. It is never texted. With a directory whose
// numbers were all checked ahead, StandInFromSet is used instead.
//
// It keys an HMAC of its own, as it did before the keyring kept reusable
// ones: what it costs is part of what balances an unknown account's /start
// against a known one's (docs/performance.md, "The same time for every kind of
// account"), and the reused HMAC made unknown accounts measurably faster.
func (k *Keyring) StandInPhone(account string) string {
	sum := k.standInSum(account)
	return fmt.Sprintf("+316%08d", binary.BigEndian.Uint32(sum)%100_000_000)
}

// StandInFromSet returns the stand-in number of an account from
// StandInPhones, picked by the same keyed hash as StandInPhone: stable for
// one account, and saying nothing about it.
func (k *Keyring) StandInFromSet(account string) string {
	return k.StandInPhones()[binary.BigEndian.Uint32(k.standInSum(account))%StandIns]
}

func (k *Keyring) standInSum(account string) []byte {
	m := hmac.New(sha256.New, k.secrets[0])
	io.WriteString(m, "sms-recovery stand-in\x00")
	io.WriteString(m, account)
	return m.Sum(nil)
}

// HashCode returns the keyed hash of a code for a flow, with the newest secret.
func (k *Keyring) HashCode(flowID, code string) []byte {
	return k.codeHash(0, flowID, code)
}

// MatchCode reports whether code hashes to stored under any secret, in time
// that does not depend on where the two differ.
func (k *Keyring) MatchCode(flowID, code string, stored []byte) bool {
	match := 0
	for i := range k.secrets {
		match |= subtle.ConstantTimeCompare(k.codeHash(i, flowID, code), stored)
	}
	return match == 1
}

// TokenHashes returns the keyed hashes of a token under every secret, newest
// first: the store is asked for each in turn.
func (k *Keyring) TokenHashes(token string) [][]byte {
	hs := make([][]byte, len(k.secrets))
	for i := range k.secrets {
		hs[i] = k.tokenHash(i, token)
	}
	return hs
}

// HashToken returns the keyed hash of a token with the newest secret.
func (k *Keyring) HashToken(token string) []byte {
	return k.tokenHash(0, token)
}

// reportLabel separates the tags of delivery report URLs from every other
// hash keyed with the same secrets.
const reportLabel = "sms-recovery delivery report\x00"

func (k *Keyring) reportTag(i int, payload string) string {
	m := k.mac(i)
	m.buf = append(m.buf, reportLabel...)
	m.buf = append(m.buf, payload...)
	sum := k.done(i, m)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// ReportTag returns the tag that vouches for payload in a delivery report
// URL the gateway hands a provider: 128 bits of HMAC-SHA256 under the
// newest secret, base64url. It is the same on every instance that shares
// the secret, whatever its realm, since a provider's report may reach any
// of them.
func (k *Keyring) ReportTag(payload string) string {
	return k.reportTag(0, payload)
}

// MatchReportTag reports whether tag is payload's ReportTag under any
// secret, in time that does not depend on where the two differ.
func (k *Keyring) MatchReportTag(payload, tag string) bool {
	match := 0
	for i := range k.secrets {
		match |= subtle.ConstantTimeCompare([]byte(k.reportTag(i, payload)), []byte(tag))
	}
	return match == 1
}

const (
	flowIDBytes = 16 // 128 bits
	tokenBytes  = 32 // 256 bits
)

var (
	flowIDLen = base64.RawURLEncoding.EncodedLen(flowIDBytes)
	tokenLen  = base64.RawURLEncoding.EncodedLen(tokenBytes)
)

// randomID returns n random bytes from r, base64url-encoded without padding.
func randomID(r io.Reader, n int) (string, error) {
	buf := randBuffers.Get().(*[randBufferLen]byte)
	defer putRandBuffer(buf)
	b := buf[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// randBuffers hold the bytes drawn for an ID or a code while it is made:
// passed to a Reader, they would otherwise be allocated each time. They
// are cleared before they go back.
var randBuffers = sync.Pool{New: func() any { return new([randBufferLen]byte) }}

// randBufferLen holds a token's bytes, and a code's draw and digits.
const randBufferLen = 64

func putRandBuffer(b *[randBufferLen]byte) {
	clear(b[:])
	randBuffers.Put(b)
}

// randomCode returns a code of length decimal digits, uniformly distributed.
// It draws as crypto/rand.Int does, by rejection, so that no value is
// likelier than another, and from the same bytes gives the same code, in
// machine words rather than big numbers: a code has at most 10 digits.
func randomCode(r io.Reader, length int) (string, error) {
	limit := uint64(1)
	for range length {
		limit *= 10
	}
	bitLen := bits.Len64(limit - 1)
	k := (bitLen + 7) / 8   // bytes drawn for a candidate
	top := uint(bitLen % 8) // bits kept of the first of them
	if top == 0 {
		top = 8
	}
	pooled := randBuffers.Get().(*[randBufferLen]byte)
	defer putRandBuffer(pooled)
	buf := pooled[:8+length]
	draw := buf[:k]
	for {
		if _, err := io.ReadFull(r, draw); err != nil {
			return "", fmt.Errorf("reading randomness: %w", err)
		}
		draw[0] &= uint8(int(1<<top) - 1)
		var n uint64
		for _, b := range draw {
			n = n<<8 | uint64(b)
		}
		if n < limit {
			digits := buf[8:]
			for i := length - 1; i >= 0; i-- {
				digits[i] = byte('0' + n%10)
				n /= 10
			}
			return string(digits), nil
		}
	}
}

// validID reports whether s has the shape of an ID of n random bytes.
func validID(s string, encodedLen int) bool {
	if len(s) != encodedLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// FlowRef is a short reference to a flow for logs: it lets an operator tie
// events together without the flow ID itself, which is in the SMS link.
func FlowRef(flowID string) string {
	sum := sha256.Sum256([]byte(flowID))
	return hex.EncodeToString(sum[:6])
}
