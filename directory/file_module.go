package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(FileModule{})
}

// FileModule is the directory http.handlers.sms_recovery.directories.file:
// a JSON file of accounts and phone numbers (see File), read again when it
// changes. JSON: {"source": "file", "path": "/etc/caddy/phones.json"}.
type FileModule struct {
	// Path is the JSON object mapping accounts to E.164 phone numbers, or to
	// {"phone": ..., "lang": ...}. Placeholders such as {env.PHONES} are
	// expanded. Required.
	Path string `json:"path,omitempty"`

	file    *File
	checked bool // every number loaded went through the gateway's PhonePin
}

// CaddyModule returns the Caddy module information.
func (FileModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".file",
		New: func() caddy.Module { return new(FileModule) },
	}
}

// Provision reads the file; a file that does not load stops the config.
func (m *FileModule) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "directory file", &m.Path); err != nil {
		return err
	}
	if m.Path == "" {
		return errors.New("directory file: a path is required")
	}
	logger := ctx.Logger()
	pin := PhonePinFrom(ctx)
	f, err := NewFile(FileConfig{
		Path:    m.Path,
		Clock:   clock.Real{},
		Prepare: pin,
		OnReloadError: func(err error) {
			logger.Error("phone directory changed but cannot be read; keeping the last good copy", zap.Error(err))
		},
	})
	if err != nil {
		return fmt.Errorf("directory file: %w", err)
	}
	m.file, m.checked = f, pin != nil
	return nil
}

// Lookup implements recovery.Directory.
func (m *FileModule) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	return m.file.Lookup(ctx, account)
}

// PhonesChecked reports whether every number the file holds was checked
// when it loaded (recovery.PhonesChecked): so when the gateway gave the
// module its PhonePin.
func (m *FileModule) PhonesChecked() bool { return m.checked }

// InProcess reports that a lookup costs no round trip (recovery.InProcess),
// so that /start on a store across the network makes its checks and its new
// flow one plan, after the lookup.
func (m *FileModule) InProcess() bool { return true }

// UnmarshalCaddyfile reads
//
//	directory file <path>
func (m *FileModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	return cfparse.OnePath(d, "directory file", &m.Path)
}

// Interface guards
var (
	_ caddy.Provisioner      = (*FileModule)(nil)
	_ cf.Unmarshaler         = (*FileModule)(nil)
	_ recovery.Directory     = (*FileModule)(nil)
	_ recovery.PhonesChecked = (*FileModule)(nil)
)
