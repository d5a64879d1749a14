package redistest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// recorder is a testing.TB that records what Require asks of it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestRequire(t *testing.T) {
	const password = "hunter2-not-for-logs"
	down := errors.New("connection refused")
	tests := []struct {
		name        string
		ci          string
		err         error
		skip, fatal bool
	}{
		{"answering", "true", nil, false, false},
		{"silent on a laptop", "", down, true, false},
		{"silent under CI", "true", down, false, true},
		{"CI set to something else", "1", down, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv(testenv.RecordDir, "") // a skip this test provokes is not the run's
			t.Setenv("REDIS_URL", "redis://:"+password+"@127.0.0.1:1/0")
			r := &recorder{TB: t}
			Require(r, tc.err)
			if (r.skipped != "") != tc.skip || (r.failed != "") != tc.fatal {
				t.Fatalf("skipped %q, failed %q; want skip %v, fail %v", r.skipped, r.failed, tc.skip, tc.fatal)
			}
			for _, msg := range []string{r.skipped, r.failed} {
				if msg == "" {
					continue
				}
				if strings.Contains(msg, password) {
					t.Errorf("message %q shows the password", msg)
				}
				if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, down.Error()) {
					t.Errorf("message %q does not say which server and why", msg)
				}
			}
		})
	}
}

func TestURL(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	if got := URL(); got != DefaultURL {
		t.Errorf("URL without REDIS_URL = %q, want %q", got, DefaultURL)
	}
	t.Setenv("REDIS_URL", "redis://u:secret@redis.internal:6380/2")
	if got := URL(); got != "redis://u:secret@redis.internal:6380/2" {
		t.Errorf("URL = %q, want $REDIS_URL", got)
	}
	if got := Redacted(); strings.Contains(got, "secret") || !strings.Contains(got, "redis.internal:6380") {
		t.Errorf("Redacted = %q", got)
	}
}

// TestSweep: the keys under a test's prefix are gone when it ends, and a
// key outside it is left alone.
func TestSweep(t *testing.T) {
	t.Parallel()
	c := Client(t)
	ctx := t.Context()
	outside := Prefix(t, c) + "kept"
	if err := c.Set(ctx, outside, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var prefix string
	t.Run("writer", func(t *testing.T) {
		prefix = Prefix(t, c)
		for _, k := range []string{"a", "b", "c:d"} {
			if err := c.Set(ctx, prefix+k, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := Keys(ctx, c, prefix)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if want := []string{prefix + "a", prefix + "b", prefix + "c:d"}; !slices.Equal(keys, want) {
			t.Errorf("Keys = %q, want %q", keys, want)
		}
	})
	if keys, err := Keys(ctx, c, prefix); err != nil || len(keys) != 0 {
		t.Errorf("keys under the prefix after the test: %q, %v; want none", keys, err)
	}
	if n, err := c.Exists(ctx, outside).Result(); err != nil || n != 1 {
		t.Errorf("key outside the prefix: exists %d, %v; want it kept", n, err)
	}
}
