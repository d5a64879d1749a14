// Package passwdfile holds the passwd_file password writer of the
// sms_recovery_verify handler: it sets an account's password in a Dovecot
// passwd-file (user:password:uid:gid:gecos:home:shell:extra_fields),
// hashed in a Dovecot scheme, every other line and field untouched.
package passwdfile

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify/dovecotpw"
)

func init() {
	caddy.RegisterModule(Writer{})
}

// Writer is http.handlers.sms_recovery_verify.writers.passwd_file.
type Writer struct {
	// Path is the passwd-file's path. Required. The file is rewritten
	// whole: a new copy beside it, of the same mode and owner, renamed
	// over it, under a flock on <path>.lock.
	Path string `json:"path,omitempty"`

	// Scheme is the Dovecot password scheme to hash in: BLF-CRYPT,
	// SHA512-CRYPT, ARGON2ID or SSHA512. Default: BLF-CRYPT.
	Scheme string `json:"scheme,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Writer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  verify.WriterNamespace + ".passwd_file",
		New: func() caddy.Module { return new(Writer) },
	}
}

// Provision fills the default scheme and checks the configuration.
func (w *Writer) Provision(caddy.Context) error {
	if w.Scheme == "" {
		w.Scheme = dovecotpw.Schemes[0]
	}
	if w.Path == "" {
		return fmt.Errorf("passwd_file: path: required")
	}
	if err := dovecotpw.Check(w.Scheme); err != nil {
		return fmt.Errorf("passwd_file: %w", err)
	}
	return nil
}

// SetPassword hashes password and writes it into account's line.
func (w *Writer) SetPassword(_ context.Context, account, password string) error {
	hash, err := dovecotpw.Hash(w.Scheme, password)
	if errors.Is(err, dovecotpw.ErrTooLong) {
		return fmt.Errorf("%w: %w", verify.ErrPasswordTooLong, err)
	} else if err != nil {
		return err
	}
	return setField(w.Path, account, hash)
}

// UnmarshalCaddyfile reads "passwd_file <path> [{ scheme <scheme> }]".
func (w *Writer) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module's name
	if !d.NextArg() {
		return d.Errf("password passwd_file: a path is required (passwd_file <path>)")
	}
	w.Path = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return cfparse.Block(d, "password passwd_file", map[string]func() error{
		"scheme": func() error { return cfparse.String(d, &w.Scheme) },
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Writer)(nil)
	_ cf.Unmarshaler        = (*Writer)(nil)
	_ verify.PasswordWriter = (*Writer)(nil)
)
