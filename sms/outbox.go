package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Outbox is a Deliverer for development: it appends each message to a file
// as one JSON line {"to","body","time"}, with the exact body a provider would
// have been sent and the time in RFC 3339 (UTC, whole seconds). The file
// holds codes and full phone numbers, so it is created readable by its owner
// only; an Outbox must never be used in production.
type Outbox struct {
	path  string
	clock recovery.Clock

	// mu keeps the lines of concurrent deliveries from interleaving and
	// guards the open file.
	mu sync.Mutex
	f  *os.File    // the file at path when it was opened; nil once closed
	fi os.FileInfo // f's identity, to tell when path names another file

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

// NewOutbox returns an Outbox writing to path. It creates the file (mode
// 0600) if needed, so that a path that cannot be written is refused now
// rather than at the first message. A nil clk means the wall clock.
func NewOutbox(path string, clk recovery.Clock) (*Outbox, error) {
	if path == "" {
		return nil, errors.New("sms outbox: a file path is required")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	o := &Outbox{path: path, clock: clk}
	o.enc = json.NewEncoder(&o.line)
	o.enc.SetEscapeHTML(false) // keep links readable: the body is written as sent
	if _, err := o.file(); err != nil {
		return nil, fmt.Errorf("sms outbox: %w", err)
	}
	return o, nil
}

// Deliver appends m to the file in a single write. The file stays open
// between messages; when path no longer names it (the file was moved away
// or removed, as log rotation does), the next message opens path afresh.
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
// request to a provider to bound (recovery.InProcess).
func (o *Outbox) InProcess() bool { return true }

// Close closes the file. A later Deliver opens it again.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f, o.fi = nil, nil
	return err
}

// file returns the open file at path, opening it when none is open or when
// path now names another file (or none). One stat per message costs far
// less than an open and a close. The caller holds o.mu, or owns o alone.
func (o *Outbox) file() (*os.File, error) {
	if o.f != nil {
		if fi, err := os.Stat(o.path); err == nil && os.SameFile(fi, o.fi) {
			return o.f, nil
		}
		o.f.Close()
		o.f, o.fi = nil, nil
	}
	f, err := openOutbox(o.path)
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

func openOutbox(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// Interface guards
var _ Deliverer = (*Outbox)(nil)
