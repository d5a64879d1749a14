package limiter

import (
	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Kept reports whether the counters of scope are budgets that span
// clients (start_account, start_phone, sms_global, its shares and the
// spend ceilings), which no churn of a bounded store may hand back. A client's own counters (start_ip,
// verify_ip), and any other, may be dropped: that hands the client back
// its own budget and nothing else.
func Kept(scope string) bool {
	switch scope {
	case ScopeStartAccount, ScopeStartPhone, ScopeSMSGlobal, ScopeSMSNetwork, ScopeSMSCountry, ScopeSpendDay, ScopeSpendMonth:
		return true
	}
	return false
}

// Refuses reports whether the counter in state s, after c's event was
// counted or, for a peek, read, refuses it.
func Refuses(c recovery.Count, s ulimiter.Context) bool {
	if c.Peek {
		return s.Remaining == 0
	}
	return s.Reached
}

// DefaultMaxKeys is the bound on the client counters a memory store keeps
// at its default size. A counter costs about 80 bytes with its share of the
// index; 250,000 still cover tens of thousands of recoveries an hour.
const DefaultMaxKeys = 250_000
