// Package filedirectory is the directory
// http.handlers.sms_recovery.directories.file: a JSON file of accounts and
// phone numbers, read again when it changes.
package filedirectory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(new(File))
}

// checkInterval is how often File looks at the file's modification time
// and size: often enough that an edit is seen at once, rarely enough that a
// stat call per lookup never becomes the cost.
const checkInterval = time.Second

// File is the directory http.handlers.sms_recovery.directories.file: a JSON
// file of accounts and phone numbers. It notices when the file changes and
// reloads it, keeping the last good copy while the new one does not parse.
// JSON: {"source": "file", "path": "/etc/caddy/phones.json"}. It is safe
// for concurrent use.
type File struct {
	// Path is the JSON object mapping accounts to E.164 phone numbers, or to
	// {"phone": ..., "lang": ..., "email": ...}, where email is an
	// alternate address that reset notices also go to (notify). Placeholders such as {env.PHONES} are
	// expanded. Required.
	Path string `json:"path,omitempty"`

	clock   recovery.Clock     // decides when to look at the file again
	onError func(error)        // told when a changed file does not load
	pin     directory.PhonePin // given every version that parses; may refuse it

	entries   atomic.Pointer[map[string]recovery.Entry]
	nextCheck atomic.Int64 // unix nanoseconds; lookups before it do not stat

	mu   sync.Mutex // serialises checks and reloads
	seen stamp      // the version last tried, loaded or not
}

// stamp tells versions of a file apart cheaply. The zero stamp stands for a
// file that could not be stat'ed.
type stamp struct {
	mtime int64 // unix nanoseconds
	size  int64
}

func stampOf(fi os.FileInfo) stamp {
	return stamp{fi.ModTime().UnixNano(), fi.Size()}
}

// CaddyModule returns the Caddy module information.
func (*File) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  directory.Namespace + ".file",
		New: func() caddy.Module { return new(File) },
	}
}

// Provision reads the file; a file that does not load stops the config.
// Each version that parses is handed to the gateway's PhonePin
// (directory.PhonePinFrom), which checks its numbers and may refuse it; a
// changed version that does not load is logged. The file is looked at again
// by the gateway's clock (directory.ClockFrom).
func (f *File) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "directory file", &f.Path); err != nil {
		return err
	}
	if f.Path == "" {
		return nil // Validate refuses it
	}
	if f.clock == nil {
		f.clock = directory.ClockFrom(ctx)
	}
	if f.clock == nil {
		f.clock = clock.Real{}
	}
	if f.onError == nil {
		logger := ctx.Logger()
		f.onError = func(err error) {
			logger.Error("phone directory changed but does not load; keeping the last good copy", zap.Error(err))
		}
	}
	if f.pin == nil {
		f.pin = directory.PhonePinFrom(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return fmt.Errorf("directory file: %w", err)
	}
	f.nextCheck.Store(f.clock.Now().Add(checkInterval).UnixNano())
	return nil
}

// Validate checks that there is a path.
func (f *File) Validate() error {
	if f.Path == "" {
		return errors.New("directory file: a path is required")
	}
	return nil
}

// Lookup returns the entry of account, normalised by
// recovery.NormalizeAccount as the file's keys are, or
// recovery.ErrUnknownAccount if the file has none, it has no phone number,
// or the rule refuses the name (no key can be that account).
func (f *File) Lookup(_ context.Context, account string) (recovery.Entry, error) {
	f.maybeReload()
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	e, ok := (*f.entries.Load())[account]
	if !ok || e.Phone == "" {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return e, nil
}

// PhonesChecked reports whether every number the file holds was checked
// when it loaded (recovery.PhonesChecked): so when the gateway gave the
// module its PhonePin.
func (f *File) PhonesChecked() bool { return f.pin != nil }

// UnmarshalCaddyfile reads
//
//	directory file <path>
func (f *File) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	return cfparse.OnePath(d, "directory file", &f.Path)
}

// Reload reads the file now. If it cannot be read or parsed, or the pin
// refuses it, the last good copy stays in use and the error says why.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load()
}

// maybeReload reloads the file if a second has passed since the last look
// and its modification time or size changed.
func (f *File) maybeReload() {
	now := f.clock.Now()
	if now.UnixNano() < f.nextCheck.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.UnixNano() < f.nextCheck.Load() { // another lookup just looked
		return
	}
	f.nextCheck.Store(now.Add(checkInterval).UnixNano())

	fi, err := os.Stat(f.Path)
	if err != nil {
		if f.seen != (stamp{}) { // report a vanished file once
			f.seen = stamp{}
			f.onError(fmt.Errorf("reloading directory file: %w; keeping the last good copy", err))
		}
		return
	}
	if stampOf(fi) == f.seen {
		return
	}
	if err := f.load(); err != nil {
		f.onError(fmt.Errorf("%w; keeping the last good copy", err))
	}
}

// load reads and parses the file and, if that works and the pin takes it,
// replaces the entries.
// It records the version it read, so that a bad one is reported once.
// f.mu must be held.
func (f *File) load() error {
	fh, err := os.Open(f.Path)
	if err != nil {
		f.seen = stamp{}
		return fmt.Errorf("loading directory file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		f.seen = stamp{}
		return fmt.Errorf("loading directory file: %w", err)
	}
	// Stamp the version before reading it: if it changes meanwhile, the next
	// check sees a new stamp and reads it again.
	f.seen = stampOf(fi)
	data, err := io.ReadAll(fh)
	if err != nil {
		return fmt.Errorf("loading directory file: %w", err)
	}
	entries, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("loading directory file %q: %w", f.Path, err)
	}
	if f.pin != nil {
		load := directory.Load{Source: f.Path, Reload: f.entries.Load() != nil, Entries: entries}
		if err := f.pin(load); err != nil {
			return fmt.Errorf("loading directory file %q: %w", f.Path, err)
		}
	}
	f.entries.Store(&entries)
	return nil
}

// parseFile parses the JSON object of a directory file. Its keys are
// normalised by recovery.NormalizeAccount, the rule the flow applies to
// what a person types; a key the rule refuses, or one that is the same
// account as an earlier key, fails the whole file. Its errors may name a
// valid account, and give a refused key by its place; they never hold a
// phone number.
func parseFile(data []byte) (map[string]recovery.Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("want a JSON object of accounts")
	}
	entries := make(map[string]recovery.Entry)
	keyNumber := make(map[string]int) // the place of each account's key
	line, counted := 1, 0             // newlines in data[:counted], plus one
	for n := 1; dec.More(); n++ {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, _ := tok.(string) // json yields only string keys inside an object
		// A JSON string holds no raw newline: the key ends on its line.
		end := int(dec.InputOffset())
		line += bytes.Count(data[counted:end], []byte{'\n'})
		counted = end
		account, err := recovery.NormalizeAccount(key)
		if err != nil {
			return nil, fmt.Errorf("key %d on line %d: %w", n, line, err)
		}
		if first, dup := keyNumber[account]; dup {
			return nil, fmt.Errorf("key %d on line %d: the same account as key %d once normalised", n, line, first)
		}
		keyNumber[account] = n
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(err)
		}
		e, err := parseValue(raw)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", account, err)
		}
		entries[account] = e
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object at byte %d", dec.InputOffset())
	}
	return entries, nil
}

// parseValue parses one value of a directory file: a phone number, an
// object with a phone number, a language and an alternate e-mail address
// (each optional), or null for no phone. Its
// errors never quote the value.
func parseValue(raw json.RawMessage) (recovery.Entry, error) {
	var phone *string
	if err := json.Unmarshal(raw, &phone); err == nil {
		if phone == nil {
			return recovery.Entry{}, nil
		}
		return recovery.Entry{Phone: strings.TrimSpace(*phone)}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return recovery.Entry{}, errors.New(`want a phone number string or an object {"phone": ..., "lang": ...}`)
	}
	var e recovery.Entry
	for name, v := range obj {
		var field *string
		switch name {
		case "phone":
			field = &e.Phone
		case "lang":
			field = &e.Lang
		case "email":
			field = &e.Email
		default:
			// Not named: a misplaced phone number could be the key.
			return recovery.Entry{}, errors.New(`unknown field in object (want "phone", "lang" and "email")`)
		}
		if err := json.Unmarshal(v, field); err != nil {
			return recovery.Entry{}, fmt.Errorf("%s: want a string", name)
		}
		*field = strings.TrimSpace(*field)
	}
	return e, nil
}

// syntaxError adds the place of a JSON syntax error to its description.
func syntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner      = (*File)(nil)
	_ caddy.Validator        = (*File)(nil)
	_ cf.Unmarshaler         = (*File)(nil)
	_ recovery.Directory     = (*File)(nil)
	_ recovery.PhonesChecked = (*File)(nil)
)
