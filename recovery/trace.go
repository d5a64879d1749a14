package recovery

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// A support reference names the trail of one flow, or of one refusal that
// has no flow, so that a person can read it to support over the phone and
// support can see what happened (caddy sms-recovery trace). It is
// TraceRefLen characters of Crockford's base32 (digits and capitals
// without I, L, O and U), written in two groups of five, e.g. K7QMX-2XD9T:
// 50 bits, so that the references of a busy site's month of flows do not
// collide and none can be guessed into another person's trail.
//
// A flow's reference is keyed (TraceRef): every instance that shares the
// secret files the flow's events under the same reference without storing
// it, and no one without the secret can tie a reference to a flow ID or an
// account. A refusal without a flow gets a random one (NewTraceRef).
const TraceRefLen = 10

// crockford is Crockford's base32 alphabet.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// traceRefLabel separates the hash of a flow's reference from every other
// hash keyed with the same secret.
const traceRefLabel = "sms-recovery support reference\x00"

// TraceRef returns the support reference of a flow: HMAC-SHA256 of
// traceRefLabel and the flow ID under the newest secret, its first 50 bits
// in Crockford's base32. A new newest secret gives flows in flight a new
// reference for the events after it.
func (k *Keyring) TraceRef(flowID string) string {
	m := k.mac(0)
	m.buf = append(m.buf, traceRefLabel...)
	m.buf = append(m.buf, flowID...)
	sum := k.done(0, m)
	return encodeTraceRef(sum[:7])
}

// NewTraceRef returns a random support reference, read from rand, for a
// refusal that has no flow.
func NewTraceRef(rand io.Reader) (string, error) {
	var b [7]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return encodeTraceRef(b[:]), nil
}

// encodeTraceRef writes the first 50 bits of b (7 bytes) as a reference.
func encodeTraceRef(b []byte) string {
	var v uint64
	for _, c := range b[:7] {
		v = v<<8 | uint64(c)
	}
	v >>= 6 // 56 bits read, 50 kept
	var out [TraceRefLen + 1]byte
	for i := TraceRefLen - 1; i >= 0; i-- {
		out[i] = crockford[v&31]
		v >>= 5
	}
	// The groups: five characters, a hyphen, five more.
	copy(out[6:], out[5:TraceRefLen])
	out[5] = '-'
	return string(out[:])
}

// ErrBadTraceRef is a support reference that cannot be one.
var ErrBadTraceRef = errors.New("not a support reference")

// ParseTraceRef reads a support reference as a person may type or say it:
// in any case, with or without hyphens and spaces, with O for 0 and I or L
// for 1 as Crockford's decoding allows. It returns the reference as
// TraceRef writes it.
func ParseTraceRef(s string) (string, error) {
	var digits [TraceRefLen]byte
	n := 0
	for _, r := range s {
		switch r {
		case '-', ' ':
			continue
		}
		if n == TraceRefLen {
			return "", ErrBadTraceRef
		}
		c := byte(0)
		switch r := strings.ToUpper(string(r)); r {
		case "O":
			c = '0'
		case "I", "L":
			c = '1'
		default:
			if len(r) == 1 && strings.IndexByte(crockford, r[0]) >= 0 {
				c = r[0]
			}
		}
		if c == 0 {
			return "", ErrBadTraceRef
		}
		digits[n] = c
		n++
	}
	if n != TraceRefLen {
		return "", ErrBadTraceRef
	}
	return string(digits[:5]) + "-" + string(digits[5:]), nil
}

// Traced is an outcome of a flow that carries the support reference its
// events are filed under, so that the answer can show it. It unwraps to
// the outcome.
type Traced struct {
	Ref string
	Err error
}

func (e *Traced) Error() string { return e.Err.Error() }

func (e *Traced) Unwrap() error { return e.Err }

// TraceOf returns the support reference err carries, or "".
func TraceOf(err error) string {
	var t *Traced
	if errors.As(err, &t) {
		return t.Ref
	}
	return ""
}

// traced wraps err, if any, with ref.
func traced(ref string, err error) error {
	if err == nil || ref == "" {
		return err
	}
	return &Traced{Ref: ref, Err: err}
}
