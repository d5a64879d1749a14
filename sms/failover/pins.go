package failover

import (
	"sync"
	"time"
)

// pins remembers, by idempotency key, the sender that may have sent a
// message whose answer was lost, until the message could no longer be
// tried.
type pins struct {
	mu      sync.Mutex
	by      map[string]pin
	sweepAt int // the size at which put next drops the pins that are over
}

type pin struct {
	route *route
	until time.Time
}

// minSweep is the fewest pins that put sweeps for.
const minSweep = 1024

func (p *pins) get(key string) *route {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.by[key].route
}

// put pins key to r until until; now is the time. Pins are few (messages whose answer was
// lost), and put drops those that are over whenever their number has
// doubled since the last sweep, so they take memory in proportion to the
// messages pinned in the last hour at most.
func (p *pins) put(key string, r *route, until, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by == nil {
		p.by, p.sweepAt = map[string]pin{}, minSweep
	}
	p.by[key] = pin{route: r, until: until}
	if len(p.by) >= p.sweepAt {
		p.sweepLocked(now)
		p.sweepAt = max(minSweep, 2*len(p.by))
	}
}

func (p *pins) drop(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.by, key)
}

// sweep drops the pins that are over at now.
func (p *pins) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
}

func (p *pins) sweepLocked(now time.Time) {
	for k, v := range p.by {
		if !now.Before(v.until) {
			delete(p.by, k)
		}
	}
}

func (p *pins) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.by)
}
