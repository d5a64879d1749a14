package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

var outboxTime = time.Date(2026, 1, 2, 3, 4, 5, 678, time.FixedZone("CET", 3600))

// newOutbox provisions an Outbox of path that reads clk (the wall clock
// when nil), and cleans it up when t ends.
func newOutbox(t *testing.T, path string, clk recovery.Clock) (*Outbox, error) {
	t.Helper()
	o := &Outbox{Path: path, clock: clk}
	err := o.Provision(caddy.Context{})
	t.Cleanup(func() { o.Cleanup() })
	return o, err
}

// readOutbox decodes every line of the outbox file, failing on a line that
// is not one JSON object with exactly the fields "to", "body" and "time".
func readOutbox(t *testing.T, path string) ([]outboxLine, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []outboxLine
	var raw []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var fields map[string]any
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", len(lines)+1, err, sc.Text())
		}
		if len(fields) != 3 {
			t.Fatalf("line %d has fields %v, want to, body, time", len(lines)+1, fields)
		}
		var l outboxLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
		raw = append(raw, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, raw
}

func TestOutboxWritesExactBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"code message", "Example Mail password reset code: 493817\nValid for 5 minutes. Enter it at https://mail.example.com/recovery/?flow=abc&x=1\nIf you did not ask for this, ignore this message.\n\n@mail.example.com #493817"},
		{"quotes and backslashes", `say "hi" \ bye`},
		{"non-ascii", "Prüfcode: 123456 – gültig ✓"},
		{"html-looking", "<b>1 & 2</b>"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "outbox.jsonl")
			o, err := newOutbox(t, path, clock.NewManual(outboxTime))
			if err != nil {
				t.Fatal(err)
			}
			m := recovery.Message{Kind: "code", To: "+31612345678", Body: tt.body, Reference: "r1"}
			if err := o.Deliver(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			lines, raw := readOutbox(t, path)
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1", len(lines))
			}
			want := outboxLine{To: "+31612345678", Body: tt.body, Time: "2026-01-02T02:04:05Z"}
			if lines[0] != want {
				t.Errorf("line = %+v, want %+v", lines[0], want)
			}
			if strings.Contains(tt.body, "&") && !strings.Contains(raw[0], "&") {
				t.Errorf("line %q escapes '&'; links should stay readable", raw[0])
			}
		})
	}
}

func TestOutboxFile(t *testing.T) {
	t.Parallel()
	t.Run("created owner-only by the first message", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "outbox.jsonl")
		o, err := newOutbox(t, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: "x"}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("mode = %o, want 600", mode)
		}
	})
	t.Run("appends to existing content", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "outbox.jsonl")
		const earlier = `{"to":"+1","body":"earlier","time":"2025-01-01T00:00:00Z"}` + "\n"
		if err := os.WriteFile(path, []byte(earlier), 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := newOutbox(t, path, clock.NewManual(outboxTime))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		lines, _ := readOutbox(t, path)
		if len(lines) != 3 || lines[0].Body != "earlier" || lines[1].Body != "0" || lines[2].Body != "1" {
			t.Errorf("lines = %+v, want earlier, 0, 1", lines)
		}
	})
	t.Run("recreated after removal", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "outbox.jsonl")
		o, err := newOutbox(t, path, clock.NewManual(outboxTime))
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: "first"}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: "x"}); err != nil {
			t.Fatal(err)
		}
		if lines, _ := readOutbox(t, path); len(lines) != 1 {
			t.Errorf("got %d lines, want 1", len(lines))
		}
	})
	t.Run("follows rotation", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "outbox.jsonl")
		o, err := newOutbox(t, path, clock.NewManual(outboxTime))
		if err != nil {
			t.Fatal(err)
		}
		deliver := func(body string) {
			t.Helper()
			if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: body}); err != nil {
				t.Fatal(err)
			}
		}
		deliver("before")
		// Moved away, as logrotate does: the old file keeps what it had,
		// and the next message starts a new one at path.
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		deliver("after")
		old, _ := readOutbox(t, path+".1")
		cur, _ := readOutbox(t, path)
		if len(old) != 1 || old[0].Body != "before" || len(cur) != 1 || cur[0].Body != "after" {
			t.Errorf("rotated file %+v, new file %+v; want before, then after", old, cur)
		}
		// Closed, it opens again on the next message.
		if err := o.Cleanup(); err != nil {
			t.Fatal(err)
		}
		deliver("reopened")
		if cur, _ := readOutbox(t, path); len(cur) != 2 || cur[1].Body != "reopened" {
			t.Errorf("after Close: %+v, want a second line", cur)
		}
	})
	t.Run("unwritable later", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "gone")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		o, err := newOutbox(t, filepath.Join(dir, "outbox.jsonl"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		m := recovery.Message{To: "+31612345678", Body: "code 493817"}
		err = o.Deliver(context.Background(), m)
		if err == nil {
			t.Fatal("Deliver into a removed directory succeeded")
		}
		if strings.Contains(err.Error(), "493817") || strings.Contains(err.Error(), "612345678") {
			t.Errorf("error %q leaks the body or the phone", err)
		}
	})
}

func TestOutboxLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, want string
	}{
		{"path from an unset variable", "{env.SMS_TEST_UNSET}", "sms outbox: placeholder {env.SMS_TEST_UNSET} is empty"},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "outbox.jsonl"), "sms outbox: open"},
		{"a directory", t.TempDir(), "sms outbox: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := guesttest.Load(t, &Outbox{Path: tt.path}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("load %q = %v, want an error containing %q", tt.path, err, tt.want)
			}
		})
	}
}

// TestOutboxModule loads the module as the gateway does, and as `caddy
// validate` does: loading creates no file; the first message does.
func TestOutboxModule(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o, err := guesttest.Load(t, &Outbox{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an outbox file after Provision (%v): loading a config must leave none behind", err)
	}
	if err := o.Deliver(context.Background(), recovery.Message{Kind: "code", To: "+31612345678", Body: "code 123456"}); err != nil {
		t.Fatal(err)
	}
	if lines, _ := readOutbox(t, path); len(lines) != 1 || lines[0].To != "+31612345678" {
		t.Fatalf("outbox = %+v", lines)
	}
}

func TestOutboxUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "path", Mod: &Outbox{}, Input: "outbox /tmp/o.jsonl", Want: `{"path":"/tmp/o.jsonl"}`},
		{Name: "without path", Mod: &Outbox{}, Input: "outbox", Want: "error: sms outbox: a path is required"},
	})
}

func TestOutboxConcurrentLinesDoNotInterleave(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o, err := newOutbox(t, path, clock.NewManual(outboxTime))
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 25
	// Bodies larger than a page make a torn or interleaved write visible.
	body := func(w, i int) string {
		return fmt.Sprintf("%02d-%02d:", w, i) + strings.Repeat(string(rune('a'+w)), 6000)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := o.Deliver(context.Background(), recovery.Message{To: "+31612345678", Body: body(w, i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	lines, _ := readOutbox(t, path)
	if len(lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(lines), writers*each)
	}
	seen := make(map[string]bool)
	for _, l := range lines {
		var w, i int
		if _, err := fmt.Sscanf(l.Body, "%02d-%02d:", &w, &i); err != nil || l.Body != body(w, i) {
			t.Fatalf("corrupted body %.40q...", l.Body)
		}
		seen[l.Body[:6]] = true
	}
	if len(seen) != writers*each {
		t.Errorf("got %d distinct messages, want %d", len(seen), writers*each)
	}
}
