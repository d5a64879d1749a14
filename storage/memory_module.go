package storage

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
)

func init() {
	caddy.RegisterModule(MemoryModule{})
}

// DefaultMaxEntries bounds the memory store when max_entries is not given.
const DefaultMaxEntries = 100_000

// MemoryModule is the store http.handlers.sms_recovery.storage.memory, the
// gateway's default: state in this process, shared by handlers with the
// same settings and kept across config reloads (see Memory). JSON:
// {"backend": "memory", "max_entries": 100000}.
type MemoryModule struct {
	// MaxEntries bounds flows, tokens and security records (locks, blocks
	// and the wrong codes behind them), each kind apart, and the rate
	// counters in proportion (2.5 per entry). A full flow table refuses new
	// starts (503 with Retry-After), the clients holding the most first,
	// and never drops a pending flow; a full security table lets go of the
	// cheapest run of wrong codes, never a lock, and never refuses a right
	// code. At least 100. Default: 100000.
	MaxEntries int `json:"max_entries,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (MemoryModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".memory",
		New: func() caddy.Module { return new(MemoryModule) },
	}
}

// Provision fills the default and checks the bound.
func (m *MemoryModule) Provision(caddy.Context) error {
	if m.MaxEntries == 0 {
		m.MaxEntries = DefaultMaxEntries
	}
	if m.MaxEntries < 100 {
		return fmt.Errorf("storage memory: max_entries %d is below 100", m.MaxEntries)
	}
	return nil
}

// Open makes the tables, which hold the rate counters too: Memory runs
// every request as one plan (limiter.PlanStore). It reserves their
// Footprint in the soft memory limit until Close.
func (m *MemoryModule) Open() (*Opened, error) {
	mem, err := NewMemory(m.MaxEntries, clock.Real{})
	if err != nil {
		return nil, fmt.Errorf("storage memory: %w", err)
	}
	release := ReserveMemory(Footprint(m.MaxEntries))
	return &Opened{Backend: mem, Close: func() error { release(); return nil }}, nil
}

// UnmarshalCaddyfile reads
//
//	storage memory {
//	    max_entries <n>   # default 100000
//	}
func (m *MemoryModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("storage memory: takes no argument, only a block (got '%s')", d.Val())
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, "storage memory"); err != nil {
			return err
		}
		switch d.Val() {
		case "max_entries":
			if err := cfparse.Int(d, &m.MaxEntries); err != nil {
				return err
			}
		default:
			return d.Errf("storage memory: unrecognized subdirective '%s'", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*MemoryModule)(nil)
	_ cf.Unmarshaler    = (*MemoryModule)(nil)
	_ Opener            = (*MemoryModule)(nil)
)
