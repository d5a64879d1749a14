package testenv

import (
	"errors"
	"fmt"
	"testing"
)

// recorder is a testing.TB that keeps what Missing told it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestMissing(t *testing.T) {
	const need, fix = "Redis at redis://127.0.0.1:6379/0", "start one (apt-get install redis-server), or set REDIS_URL"
	refused := errors.New("connection refused")
	tests := []struct {
		name, ci    string
		err         error
		skip, fatal string
	}{
		{"skips, saying what to install", "", refused,
			"skipped: needs Redis at redis://127.0.0.1:6379/0: start one (apt-get install redis-server), or set REDIS_URL (connection refused)", ""},
		{"skips without a cause", "", nil,
			"skipped: needs Redis at redis://127.0.0.1:6379/0: start one (apt-get install redis-server), or set REDIS_URL", ""},
		{"skips unless CI is exactly true", "1", refused,
			"skipped: needs Redis at redis://127.0.0.1:6379/0: start one (apt-get install redis-server), or set REDIS_URL (connection refused)", ""},
		{"fails under CI", "true", refused,
			"", "CI=true, and this test needs Redis at redis://127.0.0.1:6379/0: start one (apt-get install redis-server), or set REDIS_URL (connection refused)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			Missing(r, need, fix, tt.err)
			if r.skipped != tt.skip || r.failed != tt.fatal {
				t.Errorf("Missing skipped %q and failed %q\nwant skipped %q and failed %q", r.skipped, r.failed, tt.skip, tt.fatal)
			}
		})
	}
}
