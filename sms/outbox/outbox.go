// Package outbox is the SMS sender http.handlers.sms_recovery.senders.outbox,
// for development and tests: it appends each message to a file as one JSON
// line {"to","body","time"}, with the exact body a provider would have been
// sent and the time in RFC 3339 (UTC, whole seconds).
//
// The file holds codes and full phone numbers, so it is created readable by
// its owner only; an Outbox must never be used in production.
package outbox

import (
	"errors"
	"io/fs"
	"path/filepath"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

func init() {
	caddy.RegisterModule(new(Outbox))
}

// Outbox writes messages to a file instead of sending them. JSON:
// {"provider": "outbox", "path": "sms-outbox.jsonl"}.
type Outbox struct {
	// Path is the file. Placeholders are expanded. Default:
	// sms-outbox.jsonl in the working directory, where the gateway's
	// default sender writes too.
	Path string `json:"path,omitempty"`

	clock recovery.Clock // the wall clock unless a test sets another

	// mu keeps the lines of concurrent deliveries from interleaving and
	// guards the open file.
	mu sync.Mutex
	f  *os.File    // the file at Path when it was opened; nil once closed
	fi os.FileInfo // f's identity, to tell when Path names another file

	// line, enc and rec encode one line at a time, under mu, into the
	// same buffer.
	line bytes.Buffer
	enc  *json.Encoder
	rec  outboxLine
}

type outboxLine struct {
	To   string `json:"to"`
	Body string `json:"body"`
	Time string `json:"time"`
}

// CaddyModule returns the Caddy module information.
func (*Outbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.Namespace + ".outbox",
		New: func() caddy.Module { return new(Outbox) },
	}
}

// Provision fills the default path, warns that codes go to a file, and
// checks that the file can be written, so that a path that cannot is
// refused now rather than at the first message. It creates nothing: the
// file (mode 0600) is made by the first message, so that `caddy validate`
// leaves no file behind.
func (o *Outbox) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "sms outbox", &o.Path); err != nil {
		return err
	}
	if o.Path == "" {
		o.Path = "sms-outbox.jsonl"
	}
	if o.clock == nil {
		o.clock = clock.Real{}
	}
	o.enc = json.NewEncoder(&o.line)
	o.enc.SetEscapeHTML(false) // keep links readable: the body is written as sent
	ctx.Logger().Warn("SMS go to the development outbox file, which holds live codes: configure sms messagebird for production",
		zap.String("outbox", o.Path))
	if err := writable(o.Path); err != nil {
		return fmt.Errorf("sms outbox: %w", err)
	}
	return nil
}

// writable reports why path cannot be appended to: it is a directory, a
// file there may not be written, or, when there is none, its directory
// does not exist or may not be written. It opens nothing, since opening a
// named pipe would block or close it under its reader.
func writable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return &fs.PathError{Op: "open", Path: path, Err: unix.EISDIR}
	case err == nil:
		err = unix.Access(path, unix.W_OK)
	case errors.Is(err, fs.ErrNotExist):
		err = unix.Access(filepath.Dir(path), unix.W_OK|unix.X_OK)
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return nil
}

// Deliver appends m to the file in a single write. The file stays open
// between messages; when Path no longer names it (the file was moved away
// or removed, as log rotation does), the next message opens Path afresh.
// Writes are appends, so several Outboxes (old and new configuration
// during a reload) can share a path.
func (o *Outbox) Deliver(_ context.Context, m recovery.Message) error {
	now := o.clock.Now().UTC().Format(time.RFC3339)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rec = outboxLine{To: m.To, Body: m.Body, Time: now}
	o.line.Reset()
	err := o.enc.Encode(&o.rec)
	o.rec = outboxLine{} // the line holds a code: keep it no longer than needed
	if err != nil {
		return fmt.Errorf("encoding sms outbox line: %w", err)
	}
	defer func() { // the line too: zeroed, not just emptied
		clear(o.line.Bytes())
		o.line.Reset()
	}()
	f, err := o.file()
	if err != nil {
		return fmt.Errorf("writing sms outbox: %w", err)
	}
	if _, err := f.Write(o.line.Bytes()); err != nil {
		return fmt.Errorf("writing sms outbox: %w", err)
	}
	return nil
}

// InProcess reports that a delivery is a write to a local file, with no
// request to a provider to bound (sms.InProcess).
func (o *Outbox) InProcess() bool { return true }

// Cleanup closes the file. A later Deliver opens it again.
func (o *Outbox) Cleanup() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f, o.fi = nil, nil
	return err
}

// file returns the open file at Path, opening it when none is open or when
// Path now names another file (or none). One stat per message costs far
// less than an open and a close. The caller holds o.mu, or owns o alone.
func (o *Outbox) file() (*os.File, error) {
	if o.f != nil {
		if fi, err := os.Stat(o.Path); err == nil && os.SameFile(fi, o.fi) {
			return o.f, nil
		}
		o.f.Close()
		o.f, o.fi = nil, nil
	}
	f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	o.f, o.fi = f, fi
	return f, nil
}

// UnmarshalCaddyfile reads
//
//	sms outbox <path>
func (o *Outbox) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	return cfparse.OnePath(d, "sms outbox", &o.Path)
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Outbox)(nil)
	_ caddy.CleanerUpper = (*Outbox)(nil)
	_ cf.Unmarshaler     = (*Outbox)(nil)
	_ sms.Deliverer      = (*Outbox)(nil)
	_ sms.InProcess      = (*Outbox)(nil)
)
