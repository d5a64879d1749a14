package sms

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
)

func init() {
	caddy.RegisterModule(MessageBirdModule{})
}

// MessageBirdModule is the sender http.handlers.sms_recovery.senders.messagebird,
// through MessageBird's SMS API (see MessageBird). JSON: {"provider":
// "messagebird", "access_key": "{env.MESSAGEBIRD_ACCESS_KEY}",
// "originator": "ExampleMail"}.
type MessageBirdModule struct {
	// AccessKey is the live API key, usually {env.MESSAGEBIRD_ACCESS_KEY}
	// so that it is not written into the config. Required.
	AccessKey string `json:"access_key,omitempty"`

	// Originator is the sender shown on the phone: a number or up to 11
	// letters and digits. Placeholders are expanded. Required.
	Originator string `json:"originator,omitempty"`

	// Endpoint is the base URL of the API. Placeholders are expanded.
	// Default: https://rest.messagebird.com.
	Endpoint string `json:"endpoint,omitempty"`

	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (MessageBirdModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".messagebird",
		New: func() caddy.Module { return new(MessageBirdModule) },
	}
}

// Provision expands the placeholders and checks the settings.
func (m *MessageBirdModule) Provision(caddy.Context) error {
	for _, f := range []struct {
		name string
		s    *string
	}{{"access_key", &m.AccessKey}, {"originator", &m.Originator}, {"endpoint", &m.Endpoint}} {
		if err := placeholder.Expand(nil, "sms messagebird: "+f.name, f.s); err != nil {
			return err
		}
	}
	_, err := m.config()
	return err
}

func (m *MessageBirdModule) config() (*MessageBird, error) {
	d, err := NewMessageBird(MessageBirdConfig{
		AccessKey:  m.AccessKey,
		Originator: m.Originator,
		Endpoint:   m.Endpoint,
		Timeout:    time.Duration(m.Timeout),
	})
	if err != nil {
		return nil, fmt.Errorf("sms %w", err) // "sms messagebird: ..."
	}
	return d, nil
}

// NewDeliverer returns the MessageBird client; the release function closes
// its idle connections.
func (m *MessageBirdModule) NewDeliverer() (Deliverer, func(), error) {
	d, err := m.config()
	if err != nil {
		return nil, nil, err
	}
	return d, d.CloseIdleConnections, nil
}

// UnmarshalCaddyfile reads
//
//	sms messagebird {
//	    access_key <key>               # usually {env.MESSAGEBIRD_ACCESS_KEY}
//	    originator <name or number>
//	    endpoint   <url>               # default https://rest.messagebird.com
//	    timeout    <duration>          # default 10s
//	}
func (m *MessageBirdModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("sms messagebird: takes no argument, only a block (got '%s')", d.Val())
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		name := d.Val()
		if err := seen.Once(d, "sms messagebird"); err != nil {
			return err
		}
		var err error
		switch name {
		case "access_key":
			err = cfparse.String(d, &m.AccessKey)
		case "originator":
			err = cfparse.String(d, &m.Originator)
		case "endpoint":
			err = cfparse.String(d, &m.Endpoint)
		case "timeout":
			err = cfparse.Duration(d, &m.Timeout)
		default:
			return d.Errf("sms messagebird: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*MessageBirdModule)(nil)
	_ cf.Unmarshaler    = (*MessageBirdModule)(nil)
	_ DelivererFactory  = (*MessageBirdModule)(nil)
)
