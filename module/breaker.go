package module

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// PrefixBreaker is the conversion breaker: per destination prefix (the
// country calling code and the first Digits digits of the national number,
// +447400 for +44 7400 123456) it counts the codes sent and the codes
// entered, and blocks the codes to a prefix whose codes go out but are not
// entered, which is what SMS traffic pumping looks like. A window that
// has sent MinCodes codes to a prefix, of which at most MaxEntered percent
// were entered, blocks it: no code or notice is sent to its numbers for
// Block, the next time for LaterBlock, and from the HeldAfter-th block on
// until support lifts it (admin API, caddy sms-recovery unblock-prefix).
// With nothing entered, a prefix gets MinCodes-1 codes a window before its
// block. The answer to /start does not change: the person is shown the
// support text, as on every code page.
type PrefixBreaker struct {
	// Off turns the breaker off. Default: on.
	Off bool `json:"off,omitempty"`

	// Digits is how many digits of the national number, after the
	// country calling code, name a prefix; the last four digits of a
	// number never do. Fewer digits block more numbers at once; more let
	// a pumper spread over more prefixes. 0 to 8. Default: 4, an
	// operator's block of numbers in most plans.
	Digits *int `json:"digits,omitempty"`

	// MinCodes is how many codes a window must send to a prefix before it
	// can be blocked. Default: 100.
	MinCodes int64 `json:"min_codes,omitempty"`

	// Window is the fixed window codes are counted in, from the first code
	// to the prefix. At least 1s. Default: 24h.
	Window caddy.Duration `json:"window,omitempty"`

	// MaxEntered is the most codes entered, in percent of those sent, at
	// which a window blocks its prefix: 0 to 50. Default: 5.
	MaxEntered *int64 `json:"max_entered,omitempty"`

	// Block is the length of a prefix's first block. At least 1s.
	// Default: 1h.
	Block caddy.Duration `json:"block,omitempty"`

	// LaterBlock is the length of each later block, at least Block.
	// Default: 24h.
	LaterBlock caddy.Duration `json:"later_block,omitempty"`

	// HeldAfter is the block, counted since support last lifted one, that
	// holds until support lifts it; 0 never holds one. Default: 3.
	HeldAfter *int64 `json:"held_after,omitempty"`
}

// maxPrefixDigits bounds PrefixBreaker.Digits: a prefix of more names
// too few numbers to be an operator's block.
const maxPrefixDigits = 8

// breaker is the limiter's breaker of these settings, over its defaults.
func (b *PrefixBreaker) breaker() limiter.Breaker {
	c := limiter.DefaultBreaker()
	if b == nil {
		return c
	}
	c.Off = b.Off
	set := func(dst *time.Duration, d caddy.Duration) {
		if d != 0 {
			*dst = time.Duration(d)
		}
	}
	set(&c.Window, b.Window)
	set(&c.Block, b.Block)
	set(&c.LaterBlock, b.LaterBlock)
	if b.MinCodes != 0 {
		c.MinSent = b.MinCodes
	}
	if b.MaxEntered != nil {
		c.MaxEntered = *b.MaxEntered
	}
	if b.HeldAfter != nil {
		c.HeldAfter = *b.HeldAfter
	}
	return c
}

// digits is the national digits of a prefix.
func (b *PrefixBreaker) digits() int {
	if b == nil || b.Digits == nil {
		return recovery.DefaultPrefixDigits
	}
	return *b.Digits
}

// validate checks the settings, naming each.
func (b *PrefixBreaker) validate() []error {
	if b == nil || b.Off {
		return nil
	}
	errs := []error{b.breaker().Validate()}
	if d := b.digits(); d < 0 || d > maxPrefixDigits {
		errs = append(errs, fmt.Errorf("prefix_breaker: digits: %d is not 0 to %d", d, maxPrefixDigits))
	}
	for _, f := range []struct {
		name string
		d    caddy.Duration
	}{{"window", b.Window}, {"block", b.Block}, {"later_block", b.LaterBlock}} {
		if f.d != 0 {
			errs = append(errs, atLeast("prefix_breaker: "+f.name, f.d, leastWindow))
		}
	}
	return errs
}

// parsePrefixBreaker reads
//
//	prefix_breaker off
//	prefix_breaker {
//	    digits 4                  # national digits after the calling code
//	    trip   100 24h 5%         # <codes> <window> <most entered>
//	    block  1h 24h 3           # <first> <later> [<held from>]
//	}
func parsePrefixBreaker(d *cf.Dispenser) (*PrefixBreaker, error) {
	b := &PrefixBreaker{}
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Errf("prefix_breaker: '%s' is not off; give the settings in a block", d.Val())
		}
		b.Off = true
		return b, nil
	}
	seen := cfparse.Seen{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Once(d, "prefix_breaker"); err != nil {
			return nil, err
		}
		var err error
		switch d.Val() {
		case "digits":
			var n int
			err = cfparse.Int(d, &n)
			b.Digits = &n
		case "trip":
			err = parseTrip(d, b)
		case "block":
			err = parseBlocks(d, b)
		default:
			return nil, cfparse.Unknown(d, "prefix_breaker")
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// parseTrip reads trip <codes> <window> <most entered>%.
func parseTrip(d *cf.Dispenser, b *PrefixBreaker) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return d.ArgErr()
	}
	codes, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || codes < 1 {
		return d.Errf("prefix_breaker: trip: codes '%s' must be a whole number of at least 1", args[0])
	}
	window, err := caddy.ParseDuration(args[1])
	if err != nil {
		return d.Errf("prefix_breaker: trip: window '%s' is not a duration such as 24h", args[1])
	}
	share, err := strconv.ParseInt(strings.TrimSuffix(args[2], "%"), 10, 64)
	if err != nil || !strings.HasSuffix(args[2], "%") {
		return d.Errf("prefix_breaker: trip: entered share '%s' must be a whole percentage such as 5%%", args[2])
	}
	b.MinCodes, b.Window, b.MaxEntered = codes, caddy.Duration(window), &share
	return nil
}

// parseBlocks reads block <first> <later> [<held from>].
func parseBlocks(d *cf.Dispenser, b *PrefixBreaker) error {
	args := d.RemainingArgs()
	if len(args) != 2 && len(args) != 3 {
		return d.ArgErr()
	}
	var ds [2]time.Duration
	for i, a := range args[:2] {
		v, err := caddy.ParseDuration(a)
		if err != nil {
			return d.Errf("prefix_breaker: block: '%s' is not a duration such as 1h", a)
		}
		ds[i] = v
	}
	b.Block, b.LaterBlock = caddy.Duration(ds[0]), caddy.Duration(ds[1])
	if len(args) == 3 {
		n, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil || n < 0 {
			return d.Errf("prefix_breaker: block: held from '%s' must be a whole number, 0 for never", args[2])
		}
		b.HeldAfter = &n
	}
	return nil
}
