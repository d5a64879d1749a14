package filedirectory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/directorytest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// provision readies f as the gateway does, and returns it.
func provision(t testing.TB, f *File) (*File, error) {
	return f, directorytest.Provision(t, f, nil)
}

// fileTestStart is where the tests' manual clocks start.
var fileTestStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// writeFile writes a directory file and gives it a modification time of its
// own, so that tests do not depend on the file system's timestamp
// resolution.
func writeFile(t *testing.T, path, content string, version int) {
	t.Helper()
	if err := writeVersion(path, content, version); err != nil {
		t.Fatal(err)
	}
}

func writeVersion(path, content string, version int) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	mtime := time.Date(2025, 6, 1, 0, 0, version, 0, time.UTC)
	return os.Chtimes(path, mtime, mtime)
}

const directoryJSON = `{
	"alice@example.com": "+31612345678",
	"  Bob@Example.COM ": {"phone": "+4915123456789", "lang": "de", "email": " bob.private@example.net "},
	"carol@example.com": {"lang": "fr"},
	"dave@example.com": {"phone": ""},
	"erin@example.com": null,
	"frank@example.com": ""
}`

func TestFileLookup(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "directory.json")
	writeFile(t, path, directoryJSON, 1)
	f, err := provision(t, &File{Path: path, clock: clock.NewManual(fileTestStart)})
	if err != nil {
		t.Fatal(err)
	}
	directorytest.Lookups(t, f, []directorytest.LookupCase{
		{Account: "alice@example.com", Want: recovery.Entry{Phone: "+31612345678"}},
		{Account: " ALICE@example.com\t", Want: recovery.Entry{Phone: "+31612345678"}},
		{Account: "bob@example.com", Want: recovery.Entry{Phone: "+4915123456789", Lang: "de", Email: "bob.private@example.net"}},
		{Account: "carol@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "dave@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "erin@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "frank@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "mallory@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "", WantErr: recovery.ErrUnknownAccount},
	})
}

func TestFileRefusesErrors(t *testing.T) {
	t.Parallel()
	const phoneDigits = "612345678"
	tests := []struct {
		name    string
		content string // no file at all if empty
		want    string // in the error, besides the path
	}{
		{"missing file", "", "no such file"},
		{"empty file", " ", "want a JSON object"},
		{"array", `["+31612345678"]`, "want a JSON object"},
		{"null", `null`, "want a JSON object"},
		{"syntax error", `{"alice": "+31612345678",}`, "invalid JSON at byte"},
		{"truncated", `{"alice": "+31612345678"`, "unexpected end of file"},
		{"trailing data", `{"alice": "+31612345678"} {}`, "data after the JSON object"},
		{"number phone", `{"alice": 31612345678}`, `account "alice": want a phone number string or an object`},
		{"number phone in object", `{"alice": {"phone": 31612345678}}`, `account "alice": phone: want a string`},
		{"number lang", `{"alice": {"phone": "+31612345678", "lang": 31}}`, "lang: want a string"},
		{"number email", `{"alice": {"phone": "+31612345678", "email": 31}}`, "email: want a string"},
		{"unknown field", `{"alice": {"phon": "+31612345678"}}`, "unknown field"},
		{"phone as field name", `{"alice": {"+31612345678": "nl"}}`, "unknown field"},
		{"empty account", `{" ": "+31612345678"}`, "key 1 on line 1: account name is empty"},
		{"duplicate account", `{"alice": "+31612345678", "ALICE ": "+31612345679"}`, "key 2 on line 1: the same account as key 1 once normalised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "directory.json")
			if tt.content != "" {
				writeFile(t, path, tt.content, 1)
			}
			_, err := provision(t, &File{Path: path})
			if err == nil {
				t.Fatalf("provision accepted %q", tt.content)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain the path and %q", msg, tt.want)
			}
			if strings.Contains(msg, phoneDigits) {
				t.Errorf("error %q holds a phone number", msg)
			}
		})
	}
}

// TestFileKeysFollowTheAccountRule: the file's keys are normalised as the
// flow normalises what a person types, so that every spelling the rule
// joins finds the entry and no look-alike finds another account's.
func TestFileKeysFollowTheAccountRule(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "directory.json")
	writeFile(t, path, `{
	" Alice@Example.COM ": "+31612345678",
	"ＢＯＢ@example.com": "+4915123456789",
	"JU\u0308RGEN@example.de": "+4915123456780",
	"kelvin@example.com": "+31612345670"
}`, 1)
	f, err := provision(t, &File{Path: path, clock: clock.NewManual(fileTestStart)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, account, phone string // phone "" for ErrUnknownAccount
	}{
		{"canonical", "alice@example.com", "+31612345678"},
		{"other case and spaces", "\tALICE@example.com ", "+31612345678"},
		{"fullwidth key, ASCII lookup", "bob@example.com", "+4915123456789"},
		{"composed lookup of a decomposed key", "jürgen@example.de", "+4915123456780"},
		{"kelvin", "Kelvin@example.com", "+31612345670"},
		{"capital I with dot is not alice", "ALİCE@example.com", ""},
		{"kelvin sign is not kelvin", "\u212aelvin@example.com", ""},
		{"zero width space", "al\u200bice@example.com", ""},
		{"right-to-left override", "\u202ealice@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := f.Lookup(context.Background(), tt.account)
			switch {
			case tt.phone == "" && !errors.Is(err, recovery.ErrUnknownAccount):
				t.Fatalf("Lookup(%+q) = %+v, %v; want ErrUnknownAccount", tt.account, e, err)
			case tt.phone != "" && (err != nil || e.Phone != tt.phone):
				t.Fatalf("Lookup(%+q) = %+v, %v; want phone %s", tt.account, e, err, tt.phone)
			}
		})
	}
}

// TestFileRefusesRefusesKeysOutsideTheRule: a key the account rule refuses, or
// two keys it makes one account, stop the load. The error gives the key's
// place in the file, never the key itself or a phone number.
func TestFileRefusesRefusesKeysOutsideTheRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
		hidden  string // must not be in the error
	}{
		{"zero width space", `{"alice@example.com": "+31612345678", "al\u200bice@example.com": "+31612345679"}`,
			"key 2 on line 1: account name holds U+200B", "al\u200bice"},
		{"right-to-left override", `{"\u202ealice@example.com": "+31612345679"}`,
			"key 1 on line 1: account name holds U+202E", "\u202e"},
		{"kelvin sign", `{"kelvin@example.com": "+31612345678", "\u212aelvin@example.com": "+31612345679"}`,
			"key 2 on line 1: account name holds U+212A", "\u212a"},
		{"space inside", `{"alice smith@example.com": "+31612345679"}`,
			"key 1 on line 1: account name is not a user name under RFC 8265", "alice smith"},
		{"same account in fullwidth", `{"alice@example.com": "+31612345678", "ａｌｉｃｅ@example.com": "+31612345679"}`,
			"key 2 on line 1: the same account as key 1 once normalised", "ａｌｉｃｅ"},
		{"same account decomposed", `{"jürgen@example.de": "+31612345678", "ju\u0308rgen@example.de": "+31612345679"}`,
			"key 2 on line 1: the same account as key 1 once normalised", "jürgen"},
		{"same account on a later line", "{\n\t\"alice@example.com\": \"+31612345678\",\n\t\"ALICE@example.com\": \"+31612345679\"\n}",
			"key 2 on line 3: the same account as key 1 once normalised", "ALICE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "directory.json")
			writeFile(t, path, tt.content, 1)
			f, err := provision(t, &File{Path: path})
			if err == nil {
				t.Fatalf("provision accepted %s; Lookup(alice) = %v", tt.content, lookupErr(f, "alice@example.com"))
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if strings.Contains(msg, "61234567") || strings.Contains(msg, tt.hidden) {
				t.Errorf("error %q holds a phone number or the key", msg)
			}
		})
	}
}

func lookupErr(f *File, account string) error {
	_, err := f.Lookup(context.Background(), account)
	return err
}

func TestFileRefusesNoPath(t *testing.T) {
	t.Parallel()
	if _, err := provision(t, &File{}); err == nil || err.Error() != "directory file: a path is required" {
		t.Errorf("an empty path: %v", err)
	}
}

// reloadFixture is a directory file whose changes a test controls.
type reloadFixture struct {
	t      *testing.T
	path   string
	clock  *clock.Manual
	file   *File
	mu     sync.Mutex
	errors []error
}

func newReloadFixture(t *testing.T) *reloadFixture {
	fx := &reloadFixture{t: t, path: filepath.Join(t.TempDir(), "directory.json"), clock: clock.NewManual(fileTestStart)}
	writeFile(t, fx.path, `{"alice": "+31612345678"}`, 1)
	f, err := provision(t, &File{Path: fx.path, clock: fx.clock, onError: func(err error) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		fx.errors = append(fx.errors, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	fx.file = f
	return fx
}

// phone returns alice's phone number, or "" if she is unknown.
func (fx *reloadFixture) phone() string {
	fx.t.Helper()
	e, err := fx.file.Lookup(context.Background(), "alice")
	if err != nil && !errors.Is(err, recovery.ErrUnknownAccount) {
		fx.t.Fatal(err)
	}
	return e.Phone
}

func (fx *reloadFixture) reported() []error {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return append([]error(nil), fx.errors...)
}

func TestFileReloadsWhenChanged(t *testing.T) {
	t.Parallel()
	fx := newReloadFixture(t)
	writeFile(t, fx.path, `{"alice": "+31687654321"}`, 2)

	if got := fx.phone(); got != "+31612345678" {
		t.Errorf("within a second of loading: phone = %q, want the old one", got)
	}
	fx.clock.Advance(999 * time.Millisecond)
	if got := fx.phone(); got != "+31612345678" {
		t.Errorf("after 999ms: phone = %q, want the old one", got)
	}
	fx.clock.Advance(time.Millisecond)
	if got := fx.phone(); got != "+31687654321" {
		t.Errorf("after 1s: phone = %q, want the new one", got)
	}
	// The next look is a second after the last one, not after the load.
	writeFile(t, fx.path, `{"bob": "+31687654321"}`, 3)
	fx.clock.Advance(500 * time.Millisecond)
	if got := fx.phone(); got != "+31687654321" {
		t.Errorf("500ms after the last look: phone = %q, want the second version", got)
	}
	fx.clock.Advance(500 * time.Millisecond)
	if got := fx.phone(); got != "" {
		t.Errorf("after the third version: phone = %q, want none", got)
	}
	if errs := fx.reported(); len(errs) != 0 {
		t.Errorf("reported errors: %v", errs)
	}
}

func TestFileChecksOnlyModTimeAndSize(t *testing.T) {
	t.Parallel()
	fx := newReloadFixture(t)
	// Same size, same modification time: taken as unchanged, without reading.
	writeFile(t, fx.path, `{"alice": "+31687654321"}`, 1)
	fx.clock.Advance(time.Second)
	if got := fx.phone(); got != "+31612345678" {
		t.Errorf("phone = %q, want the old one", got)
	}
	// Reload reads it regardless.
	if err := fx.file.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := fx.phone(); got != "+31687654321" {
		t.Errorf("after Reload: phone = %q, want the new one", got)
	}
}

func TestFileKeepsLastGoodCopy(t *testing.T) {
	t.Parallel()
	fx := newReloadFixture(t)

	writeFile(t, fx.path, `{"alice": "+31687654321",`, 2)
	fx.clock.Advance(time.Second)
	if got := fx.phone(); got != "+31612345678" {
		t.Errorf("after a bad version: phone = %q, want the last good one", got)
	}
	errs := fx.reported()
	if len(errs) != 1 {
		t.Fatalf("reported %d errors, want 1: %v", len(errs), errs)
	}
	msg := errs[0].Error()
	if !strings.Contains(msg, fx.path) || !strings.Contains(msg, "invalid JSON") || !strings.Contains(msg, "keeping the last good copy") {
		t.Errorf("reported error %q does not say what and where", msg)
	}
	if strings.Contains(msg, "612345678") || strings.Contains(msg, "687654321") {
		t.Errorf("reported error %q holds a phone number", msg)
	}
	if err := fx.file.Reload(); err == nil {
		t.Error("Reload of the bad version succeeded")
	}

	// The bad version is reported once, not at every look.
	fx.clock.Advance(time.Second)
	fx.phone()
	if n := len(fx.reported()); n != 1 {
		t.Errorf("reported %d errors after another look, want 1", n)
	}

	// The file vanishes: reported once, old copy kept.
	if err := os.Remove(fx.path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		fx.clock.Advance(time.Second)
		if got := fx.phone(); got != "+31612345678" {
			t.Errorf("after removal: phone = %q, want the last good one", got)
		}
	}
	if n := len(fx.reported()); n != 2 {
		t.Errorf("reported %d errors after removal, want 2: %v", n, fx.reported())
	}

	// A good version comes back.
	writeFile(t, fx.path, `{"alice": "+31687654321"}`, 3)
	fx.clock.Advance(time.Second)
	if got := fx.phone(); got != "+31687654321" {
		t.Errorf("after the fix: phone = %q, want the new one", got)
	}
	if n := len(fx.reported()); n != 2 {
		t.Errorf("reported %d errors after the fix, want 2", n)
	}
}

func TestFileConcurrentReload(t *testing.T) {
	t.Parallel()
	fx := newReloadFixture(t)
	phones := []string{"+31612345678", "+31687654321"}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				fx.clock.Advance(100 * time.Millisecond)
				e, err := fx.file.Lookup(context.Background(), "alice")
				if err != nil || (e.Phone != phones[0] && e.Phone != phones[1]) {
					t.Errorf("Lookup = %+v, %v", e, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			if err := writeVersion(fx.path, `{"alice": "`+phones[i%2]+`"}`, 2+i); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if errs := fx.reported(); len(errs) != 0 {
		// A half-written file can be read in between; os.WriteFile is not
		// atomic. What matters is that lookups never failed.
		t.Logf("reported during concurrent writes: %v", errs)
	}
}

func BenchmarkFileLookup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "directory.json")
	if err := os.WriteFile(path, []byte(directoryJSON), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := provision(b, &File{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.Lookup(context.Background(), "Alice@Example.com"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFilePinsEveryVersion checks that each version of the file that
// parses is handed to the pin, with whether it replaces one in use, before
// any lookup sees it; that a version that does not parse is not; and that
// a version the pin refuses does not load.
func TestFilePinsEveryVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "phones.json")
	writeFile(t, path, `{"alice": "+31612345678", "bob": {"phone": "+31687654321", "lang": "nl"}, "carol": {"lang": "nl"}}`, 1)
	var mu sync.Mutex
	var got []string
	refuse := false
	pin := func(l directory.Load) error {
		mu.Lock()
		defer mu.Unlock()
		var phones []string
		for _, e := range l.Entries {
			phones = append(phones, e.Phone)
		}
		slices.Sort(phones)
		got = append(got, fmt.Sprintf("%t %t %q", l.Source == path, l.Reload, phones))
		if refuse {
			return errors.New("no number may get a code")
		}
		return nil
	}
	f, err := provision(t, &File{Path: path, pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("pinned %q, want %q", got, want)
		}
	}
	first := `true false ["" "+31612345678" "+31687654321"]`
	check(first)
	writeFile(t, path, `{"dave": "+31611111111"}`, 2)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	second := `true true ["+31611111111"]`
	check(first, second)
	writeFile(t, path, `{"dave": `, 3)
	if err := f.Reload(); err == nil {
		t.Fatal("a broken file loaded")
	}
	check(first, second)

	mu.Lock()
	refuse = true
	mu.Unlock()
	writeFile(t, path, `{"erin": "0612345678"}`, 4)
	err = f.Reload()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no number may get a code") {
		t.Fatalf("a version the pin refused: %v", err)
	}
	check(first, second, `true true ["0612345678"]`)
	if lookupErr(f, "dave") != nil || !errors.Is(lookupErr(f, "erin"), recovery.ErrUnknownAccount) {
		t.Error("a version the pin refused replaced the last good copy")
	}
	if _, err := provision(t, &File{Path: path, pin: pin}); err == nil || !strings.Contains(err.Error(), "no number may get a code") {
		t.Errorf("provision of a version the pin refuses: %v", err)
	}
}

// TestFileKeepsTheGatewaysTime: a file loaded through a context with the
// gateway's clock looks at the file again by that clock.
func TestFileKeepsTheGatewaysTime(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "phones.json")
	writeFile(t, path, `{"alice": "+31612345678"}`, 1)
	clk := clock.NewManual(fileTestStart)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	f := &File{Path: path}
	if err := f.Provision(directory.WithClock(ctx, clk)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, `{"alice": "+31687654321"}`, 2)
	fx := &reloadFixture{t: t, file: f}
	if got := fx.phone(); got != "+31612345678" {
		t.Errorf("before the gateway's clock moved: phone = %q, want the old one", got)
	}
	clk.Advance(time.Second)
	if got := fx.phone(); got != "+31687654321" {
		t.Errorf("a second later by the gateway's clock: phone = %q, want the new one", got)
	}
}
