package sms

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
)

func init() {
	caddy.RegisterModule(OutboxModule{})
}

// DefaultOutbox is the outbox file when none is named, and the gateway's
// sender when it names none: for development only.
const DefaultOutbox = "sms-outbox.jsonl"

// OutboxModule is the sender http.handlers.sms_recovery.senders.outbox: it
// appends one JSON line {"to","body","time"} per message to a file instead
// of sending it (see Outbox). For development and tests only: the file
// holds live codes. JSON: {"provider": "outbox", "path": "sms-outbox.jsonl"}.
type OutboxModule struct {
	// Path is the file. Placeholders are expanded. Default:
	// sms-outbox.jsonl in the working directory.
	Path string `json:"path,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (OutboxModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".outbox",
		New: func() caddy.Module { return new(OutboxModule) },
	}
}

// Provision fills the default path and warns that codes go to a file.
func (m *OutboxModule) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "sms outbox", &m.Path); err != nil {
		return err
	}
	if m.Path == "" {
		m.Path = DefaultOutbox
	}
	ctx.Logger().Warn("SMS go to the development outbox file, which holds live codes: configure sms messagebird for production",
		zap.String("outbox", m.Path))
	return nil
}

// NewDeliverer opens the outbox file.
func (m *OutboxModule) NewDeliverer() (Deliverer, func(), error) {
	o, err := NewOutbox(m.Path, clock.Real{})
	if err != nil {
		return nil, nil, fmt.Errorf("sms outbox: %w", err)
	}
	return o, func() { _ = o.Close() }, nil
}

// UnmarshalCaddyfile reads
//
//	sms outbox <path>
func (m *OutboxModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	return cfparse.OnePath(d, "sms outbox", &m.Path)
}

// Interface guards
var (
	_ caddy.Provisioner = (*OutboxModule)(nil)
	_ cf.Unmarshaler    = (*OutboxModule)(nil)
	_ DelivererFactory  = (*OutboxModule)(nil)
)
