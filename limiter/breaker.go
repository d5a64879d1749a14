package limiter

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// ScopeBreaker names the conversion breaker in refusals, events and
// configuration errors.
const ScopeBreaker = "prefix_breaker"

// The scopes of the breaker's counters of one prefix, which every store
// keeps under these names: the codes sent in the window, and the codes
// entered.
const (
	ScopeSent    = "prefix_sent"
	ScopeEntered = "prefix_entered"
)

// Breaker is the conversion breaker: per destination prefix (see
// recovery.DestinationPrefix) it counts the codes sent and the codes
// entered in a fixed window, and blocks the codes to a prefix whose codes
// go out but are not entered, which is what traffic pumping looks like: an
// attacker earns on every SMS to numbers it rents, and never reads one.
//
// A window that has sent MinSent codes or more, of which at most
// MaxEntered percent were entered, trips a block on the code that makes it
// so: that code and every code after it to the prefix are dropped until the
// block ends. So with no code entered, a prefix gets MinSent-1 codes a
// window and then a block. The first block lasts Block, every later one
// LaterBlock, and the HeldAfter-th in a row holds until support lifts it.
// Whether a block is in force is read for a decoy too, so that an unknown
// account's start costs what a known one's does; only codes of known
// accounts are counted.
type Breaker struct {
	// Off turns the breaker off: no prefix is ever blocked.
	Off bool
	// Window is the fixed window codes are counted in, opening at the
	// first code sent to the prefix. Default: 24h.
	Window time.Duration
	// MinSent is how many codes a window sends to a prefix before it can
	// trip. Default: 100.
	MinSent int64
	// MaxEntered is the share of those codes, in percent, that trips a
	// block when at most so many were entered: 0 blocks only a prefix whose
	// codes are never entered. Ordinary recovery traffic enters well over
	// a third. Default: 5.
	MaxEntered int64
	// Block is the length of a prefix's first block. Default: 1h.
	Block time.Duration
	// LaterBlock is the length of each further block, until support lifts
	// one. Default: 24h.
	LaterBlock time.Duration
	// HeldAfter is the block, counted since support last lifted one, that
	// holds until support lifts it; 0 never holds one. Default: 3.
	HeldAfter int64
}

// DefaultBreaker returns the breaker's defaults: a prefix that is sent 100
// codes in 24h of which at most 5 are entered is blocked for 1h, then for
// 24h, and the third time until support lifts the block.
func DefaultBreaker() Breaker {
	return Breaker{
		Window: 24 * time.Hour, MinSent: 100, MaxEntered: 5,
		Block: time.Hour, LaterBlock: 24 * time.Hour, HeldAfter: 3,
	}
}

// maxEnteredCap bounds MaxEntered: above half, ordinary traffic would trip.
const maxEnteredCap = 50

// Validate reports every setting of b that cannot work.
func (b Breaker) Validate() error {
	if b.Off {
		return nil
	}
	var errs []error
	if b.Window <= 0 {
		errs = append(errs, fmt.Errorf("%s: window must be positive, got %s", ScopeBreaker, b.Window))
	}
	if b.MinSent < 1 {
		errs = append(errs, fmt.Errorf("%s: codes before a block must be at least 1, got %d", ScopeBreaker, b.MinSent))
	}
	if b.MaxEntered < 0 || b.MaxEntered > maxEnteredCap {
		errs = append(errs, fmt.Errorf("%s: entered share must be 0%% to %d%% (more blocks ordinary traffic), got %d%%", ScopeBreaker, maxEnteredCap, b.MaxEntered))
	}
	if b.Block <= 0 || b.LaterBlock < b.Block {
		errs = append(errs, fmt.Errorf("%s: blocks must be positive and the later ones no shorter than the first, got %s and %s", ScopeBreaker, b.Block, b.LaterBlock))
	}
	if b.HeldAfter < 0 {
		errs = append(errs, fmt.Errorf("%s: the block held until lifted must be 0 (none) or more, got %d", ScopeBreaker, b.HeldAfter))
	}
	return errors.Join(errs...)
}

// Trips reports whether a window that sent sent codes, of which entered
// were entered, trips r: how every store decides, Memory in Go and Redis
// in its script.
func Trips(r recovery.BreakerRule, sent, entered int64) bool {
	return sent >= r.MinSent && entered*100 <= sent*r.MaxEntered
}

// breaker is the Breaker as a Guard puts it in its plans: its rule, and
// the threshold of its blocks, whose policy makes each trip a strike that
// sets a lock at once.
type breaker struct {
	off  bool
	rule recovery.BreakerRule
	threshold
}

func newBreaker(b Breaker) breaker {
	// The first block lasts Block, and the next one growth times as long,
	// capped at LaterBlock: LaterBlock.
	growth := max(1, int64((b.LaterBlock+b.Block-1)/max(b.Block, 1)))
	return breaker{
		off:  b.Off,
		rule: recovery.BreakerRule{Window: b.Window, MinSent: b.MinSent, MaxEntered: b.MaxEntered},
		threshold: threshold{scope: ScopeBreaker, kind: recovery.KindPrefix, reason: recovery.ErrPrefixBlocked,
			why: recovery.ReasonLowConversion, policy: recovery.Policy{
				Threshold: 1, Window: b.Window, Duration: b.Block, MaxDuration: b.LaterBlock,
				Growth: growth, Run: true, Permanent: b.HeldAfter,
			}},
	}
}

// step is the breaker's step for the codes of prefix, counted as mode; none
// when the breaker is off or there is no prefix.
func (b breaker) step(prefix string, mode recovery.BreakerMode) recovery.BreakerStep {
	if b.off || prefix == "" {
		return recovery.BreakerStep{}
	}
	return recovery.BreakerStep{Key: prefix, Mode: mode, Rule: b.rule, Policy: b.policy}
}

// sendMode is how a code is counted: a decoy's only peeks, so that it
// costs the same and counts nothing.
func sendMode(decoy bool) recovery.BreakerMode {
	if decoy {
		return recovery.BreakerPeek
	}
	return recovery.BreakerSend
}
