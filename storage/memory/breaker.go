package memory

import (
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// breakerBound is how many of the conversion breaker's counters
// (recovery.BreakerStep) a store of maxEntries keeps: two per destination
// prefix with codes in the window, of which a store of the default size
// holds 12,500. The table drops the least recently
// used: a prefix that is being pumped is used at every code, so only codes
// under thousands of other prefixes in between could push its counters
// out, and dropping an idle prefix's counters only forgets its codes.
func breakerBound(maxEntries int) int { return max(100, maxEntries/4) }

// breakerBlocked reads the block of b's prefix for a code about to be sent
// or peeked, into o. m.mu is held.
func (m *Store) breakerBlocked(b *recovery.BreakerStep, now time.Time, o *recovery.Outcome) {
	if b.Key == "" || b.Mode == recovery.BreakerEntered {
		return
	}
	if r := m.locks.get(lockID{recovery.KindPrefix, b.Key}, now); r != nil && r.InForce(now) {
		o.Blocked, o.Block = true, r.Lock
	}
}

// breakerCount counts the code of b's plan once the plan went through: as
// sent, unless the prefix's block or a soft counter refused it, tripping a
// block when the window's codes call for one; or as entered, when the
// plan consumed its flow. A block that finds no room in the security table
// is not set, and the window goes on: the next code tries again. m.mu is
// held.
func (m *Store) breakerCount(b *recovery.BreakerStep, now time.Time, o *recovery.Outcome) {
	sent, entered := m.flows.keys.scoped(limiter.ScopeSent, b.Key), m.flows.keys.scoped(limiter.ScopeEntered, b.Key)
	switch {
	case b.Key == "":
	case b.Mode == recovery.BreakerEntered && o.Won:
		m.breakers.step(entered, b.Rule.Window, 1, now)
	case b.Mode == recovery.BreakerSend && !o.Blocked && o.Soft == 0:
		s, opened := m.breakers.step(sent, b.Rule.Window, 1, now)
		if opened {
			m.breakers.forget(entered) // the codes entered of the window before
		}
		e, _ := m.breakers.step(entered, b.Rule.Window, 0, now)
		if !limiter.Trips(b.Rule, s.n, e.n) {
			return
		}
		st, err := m.strike(recovery.KindPrefix, b.Key, b.Policy, now)
		if err != nil {
			return
		}
		m.breakers.forget(sent)
		m.breakers.forget(entered)
		o.Blocked, o.Tripped, o.Block = true, true, st.Lock
	}
}
