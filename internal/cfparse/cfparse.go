// Package cfparse reads the one-argument subdirectives that the
// sms_recovery Caddyfile directive and its guest modules share, with the
// same messages everywhere ("<name>: '<value>' is not a duration"), and
// hands a directive's line and block to the guest module it names (Guest).
package cfparse

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// String reads exactly one argument of the current subdirective into s.
func String(d *cf.Dispenser, s *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*s = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Int reads exactly one whole number.
func Int(d *cf.Dispenser, n *int) error {
	name := d.Val()
	var s string
	if err := String(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s: '%s' is not a whole number", name, s)
	}
	*n = v
	return nil
}

// Duration reads exactly one duration in Caddy's syntax.
func Duration(d *cf.Dispenser, out *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := String(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: '%s' is not a duration", name, s)
	}
	*out = caddy.Duration(v)
	return nil
}

// OnOff reads exactly one of on, off, true or false.
func OnOff(d *cf.Dispenser) (bool, error) {
	name := d.Val()
	var s string
	if err := String(d, &s); err != nil {
		return false, err
	}
	switch s {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, d.Errf("%s: '%s' must be on or off", name, s)
}

// Seen rejects a subdirective given twice in one block, with what as the
// prefix of the message (e.g. "directory ldap").
type Seen map[string]bool

// Once returns an error when the current subdirective came before.
func (s Seen) Once(d *cf.Dispenser, what string) error {
	name := d.Val()
	if s[name] {
		return d.Errf("%s: duplicate subdirective '%s'", what, name)
	}
	s[name] = true
	return nil
}

// Block reads the block of the current directive, whose subdirectives are
// the keys of options: each at most once, read by its function with d at
// its name. what prefixes the errors, such as "directory ldap".
func Block(d *cf.Dispenser, what string, options map[string]func() error) error {
	seen := Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, what); err != nil {
			return err
		}
		read, ok := options[d.Val()]
		if !ok {
			return d.Errf("%s: unrecognized subdirective '%s'", what, d.Val())
		}
		if err := read(); err != nil {
			return err
		}
	}
	return nil
}

// OnePath reads the rest of "<what> <path>", a module that takes one path
// and no block, into path: what names the directive in errors, such as
// "directory file". d is at the module's name.
func OnePath(d *cf.Dispenser, what string, path *string) error {
	if !d.NextArg() {
		return d.Errf("%s: a path is required (%s <path>)", what, what)
	}
	*path = d.Val()
	if d.NextArg() {
		return d.Errf("%s: one path, not '%s' too", what, d.Val())
	}
	for d.NextBlock(0) {
		return d.Errf("%s: unrecognized subdirective '%s'", what, d.Val())
	}
	return nil
}

// Guest hands the rest of the current directive (directory, sms or
// storage) to the guest module of namespace that its first argument names,
// and returns the module's JSON with the name under key. what says what the
// name is, for the error when no such module is registered.
func Guest(d *cf.Dispenser, namespace, key, what string) (json.RawMessage, error) {
	directive := d.Val()
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	id := namespace + "." + name
	if _, err := caddy.GetModule(id); err != nil {
		var have []string
		for _, info := range caddy.GetModules(namespace) {
			have = append(have, info.ID.Name())
		}
		return nil, d.Errf("%s: unknown %s '%s': no module %s is registered (this Caddy has %s; add one with xcaddy build --with <its package>)",
			directive, what, name, id, strings.Join(have, ", "))
	}
	unm, err := cf.UnmarshalModule(d, id)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, key, name, nil), nil
}
