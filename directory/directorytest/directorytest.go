// Package directorytest readies directory modules in tests as the gateway
// does: through a context that may carry a request signer, provisioned,
// validated, and cleaned up when the test ends.
package directorytest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
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

// LookupCase is one lookup and what it must give.
type LookupCase struct {
	Account string
	Want    recovery.Entry
	WantErr error  // nil when the account has a phone
	ErrText string // in the error
}

// Lookups looks each case up in d in a parallel subtest of t: the error is
// the case's (never unavailable and unknown at once) and holds its text
// and none of secrets, and the entry is the case's.
func Lookups(t *testing.T, d recovery.Directory, cases []LookupCase, secrets ...string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Account, func(t *testing.T) {
			t.Parallel()
			got, err := d.Lookup(context.Background(), c.Account)
			if !errors.Is(err, c.WantErr) || (err == nil) != (c.WantErr == nil) {
				t.Fatalf("Lookup(%q) error = %v, want %v", c.Account, err, c.WantErr)
			}
			if errors.Is(err, recovery.ErrUnavailable) && errors.Is(err, recovery.ErrUnknownAccount) {
				t.Errorf("error %v is both unavailable and unknown", err)
			}
			if err != nil && !strings.Contains(err.Error(), c.ErrText) {
				t.Errorf("error %q does not contain %q", err, c.ErrText)
			}
			for _, s := range secrets {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds %q", err, s)
				}
			}
			if got != c.Want {
				t.Errorf("Lookup(%q) = %+v, want %+v", c.Account, got, c.Want)
			}
		})
	}
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
