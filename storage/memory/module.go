package memory

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

func init() {
	caddy.RegisterModule(new(Store))
}

// DefaultMaxEntries bounds the store when max_entries is not given.
const DefaultMaxEntries = 100_000

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storage.Namespace + ".memory",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision fills the defaults.
func (m *Store) Provision(caddy.Context) error {
	if m.MaxEntries == 0 {
		m.MaxEntries = DefaultMaxEntries
	}
	if m.SoftMemoryLimit == nil {
		on := true
		m.SoftMemoryLimit = &on
	}
	return nil
}

// Validate checks the bound.
func (m *Store) Validate() error {
	if m.MaxEntries < 100 {
		return fmt.Errorf("storage memory: max_entries %d is below 100", m.MaxEntries)
	}
	return nil
}

// Open makes the tables, which hold the rate counters too: the store runs
// every request as one plan (recovery.Store), and is its own Backend.
// Unless SoftMemoryLimit is false, it reserves the tables' footprint in
// the soft memory limit until Close.
func (m *Store) Open() (*storage.Opened, error) {
	if err := m.open(clock.Real{}); err != nil {
		return nil, fmt.Errorf("storage memory: %w", err)
	}
	release := func() {}
	if m.SoftMemoryLimit == nil || *m.SoftMemoryLimit {
		release = reserve(footprint(m.MaxEntries))
	}
	return &storage.Opened{Backend: m, Close: func() error { release(); return nil }}, nil
}

// UnmarshalCaddyfile reads
//
//	storage memory {
//	    max_entries <n>                # default 100000
//	    soft_memory_limit on|off       # default on
//	}
func (m *Store) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("storage memory: takes no argument, only a block (got '%s')", d.Val())
	}
	return cfparse.Block(d, "storage memory", map[string]func() error{
		"max_entries": func() error { return cfparse.Int(d, &m.MaxEntries) },
		"soft_memory_limit": func() error {
			on, err := cfparse.OnOff(d)
			m.SoftMemoryLimit = &on
			return err
		},
	})
}

// Interface guards
var (
	_ caddy.Provisioner = (*Store)(nil)
	_ caddy.Validator   = (*Store)(nil)
	_ cf.Unmarshaler    = (*Store)(nil)
	_ storage.Opener    = (*Store)(nil)
)
