// Package guesttest holds the test helpers shared by the packages of the
// gateway's guest modules (senders, directories, stores): loading a module
// as the gateway does, and checking what its Caddyfile segment becomes.
// Only tests import it.
package guesttest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Load loads a fresh module of mod's ID from mod's JSON settings, as the
// gateway's ctx.LoadModule does: provisioned and validated. Caddy cleans
// it up when tb ends.
func Load[M caddy.Module](tb testing.TB, mod M) (M, error) {
	tb.Helper()
	var zero M
	raw, err := json.Marshal(mod)
	if err != nil {
		return zero, err
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	loaded, err := ctx.LoadModuleByID(string(mod.CaddyModule().ID), raw)
	if err != nil {
		return zero, err
	}
	return loaded.(M), nil
}

// Case is one Caddyfile segment and what it must become.
type Case struct {
	Name  string
	Mod   cf.Unmarshaler // a zero module to unmarshal into
	Input string
	Want  string // the module's JSON, or "error: " and part of the message
}

// Unmarshal runs each case as a parallel subtest of t.
func Unmarshal(t *testing.T, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			err := c.Mod.UnmarshalCaddyfile(cf.NewTestDispenser(c.Input))
			if want, isErr := strings.CutPrefix(c.Want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(c.Mod); string(got) != c.Want {
				t.Fatalf("JSON = %s, want %s", got, c.Want)
			}
		})
	}
}
