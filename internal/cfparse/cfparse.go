// Package cfparse reads the one-argument subdirectives that the
// sms_recovery Caddyfile directive and its guest modules share, with the
// same messages everywhere ("<name>: '<value>' is not a duration"), and
// hands a directive's line and block to the guest module it names (Guest).
// Its messages never quote a token that may be part of a secret (Secret,
// Unknown).
package cfparse

import (
	"encoding/json"
	"regexp"
	"slices"
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

// Secret reads exactly one argument that may hold a secret (a key, a
// password, a URL or DSN with a password in it) into s; what names it in
// errors, such as "storage redis: url". A second argument is likely the
// rest of the value, split by a space, so the error does not quote it.
func Secret(d *cf.Dispenser, what string, s *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*s = d.Val()
	if d.NextArg() {
		return d.Errf("%s: one value, and nothing after it on its line (the rest is %s)", what, notShown)
	}
	return nil
}

// notShown ends the message about a token that is not quoted.
const notShown = "not shown: it may be part of a secret; is a key split over two lines or by a space?"

// looksLikeName matches what a misspelt subdirective looks like; a token
// that does not is more likely the rest of a secret.
var looksLikeName = regexp.MustCompile(`^[a-z_]{1,32}$`)

// secretOptions are the subdirectives whose value is a secret, or a URL
// or DSN that may hold one.
var secretOptions = map[string]bool{
	"secret": true, "hmac_key": true, "ed25519_key": true, "ed25519_public_key": true, "key": true,
	"access_key": true, "bind_password": true, "password": true,
	"bearer": true, "basic_auth": true, "header": true, "form": true, "bird_secret": true,
}

// Unknown returns the error for the current token, which names no
// subdirective of the block; what prefixes the message ("" for none). The
// token is quoted only when it looks like a misspelt name and its line
// does not follow one that gives a secret: otherwise it is likely the
// second half of a secret split over two lines, which an error, a log or
// the output of caddy adapt must not show.
func Unknown(d *cf.Dispenser, what string) error {
	if what != "" {
		what += ": "
	}
	if looksLikeName.MatchString(d.Val()) && !afterSecret(d) {
		return d.Errf("%sunrecognized subdirective '%s'", what, d.Val())
	}
	return d.Errf("%sunrecognized subdirective (%s)", what, notShown)
}

// afterSecret says whether the line before the current token's gives a
// secret: it starts with one of secretOptions or ends in a URL or DSN. d is
// left at the current token.
func afterSecret(d *cf.Dispenser) bool {
	line, prevLine := d.Line(), -1
	var first, last string
	moved := 0
	for {
		if !d.Prev() {
			moved++ // Prev moves to before the first token as it says false
			break
		}
		moved++
		if prevLine == -1 {
			if d.Line() >= line {
				continue
			}
			prevLine, last = d.Line(), d.Val()
		}
		if d.Line() != prevLine {
			break
		}
		first = d.Val()
	}
	for ; moved > 0; moved-- {
		d.Next()
	}
	return secretOptions[first] || strings.Contains(last, "://") || strings.Contains(last, "password=")
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
// the keys of options: each at most once, but for those named repeatable,
// read by its function with d at its name. what prefixes the errors, such
// as "directory ldap".
func Block(d *cf.Dispenser, what string, options map[string]func() error, repeatable ...string) error {
	seen := Seen{}
	for d.NextBlock(0) {
		if !slices.Contains(repeatable, d.Val()) {
			if err := seen.Once(d, what); err != nil {
				return err
			}
		}
		read, ok := options[d.Val()]
		if !ok {
			return Unknown(d, what)
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
		return Unknown(d, what)
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
	return GuestHere(d, directive, namespace, key, what)
}

// GuestHere hands the current token, which names a guest module of
// namespace, and the rest of its line and block to that module, and
// returns the module's JSON with the name under key: a line of a block of
// senders, such as the messagebird line of "sms failover". directive names
// what holds the line in errors, what what the name is.
func GuestHere(d *cf.Dispenser, directive, namespace, key, what string) (json.RawMessage, error) {
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
