// Package directorytest readies directory modules in tests as the gateway
// does: through a context that may carry a request signer, provisioned,
// validated, and cleaned up when the test ends.
package directorytest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Load loads the directory module name (file, http, ...) from its JSON as
// the gateway does, through a context with sign (none when nil), and
// returns it or the load error.
func Load(t testing.TB, name, raw string, sign directory.RequestSigner) (recovery.Directory, error) {
	t.Helper()
	mod, err := newContext(t, sign).LoadModuleByID(directory.Namespace+"."+name, json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return mod.(recovery.Directory), nil
}

// Provision readies m as Load does, for a test that set some of its
// unexported fields first: Provision, then Validate, then Cleanup when t
// ends or at once on an error.
func Provision(t testing.TB, m caddy.Provisioner, sign directory.RequestSigner) error {
	t.Helper()
	err := m.Provision(newContext(t, sign))
	if v, ok := m.(caddy.Validator); ok && err == nil {
		err = v.Validate()
	}
	if c, ok := m.(caddy.CleanerUpper); ok {
		if err != nil {
			c.Cleanup()
		} else {
			t.Cleanup(func() { c.Cleanup() })
		}
	}
	return err
}

// newContext is a Caddy context that carries sign, cancelled when t ends.
func newContext(t testing.TB, sign directory.RequestSigner) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if sign != nil {
		ctx = directory.WithRequestSigner(ctx, sign)
	}
	return ctx
}
