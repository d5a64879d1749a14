package testenv

import (
	"errors"
	"fmt"
	"strings"
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
			t.Setenv(RecordDir, "")
			r := &recorder{TB: t}
			Missing(r, need, fix, tt.err)
			if r.skipped != tt.skip || r.failed != tt.fatal {
				t.Errorf("Missing skipped %q and failed %q\nwant skipped %q and failed %q", r.skipped, r.failed, tt.skip, tt.fatal)
			}
		})
	}
}

func TestMissingRecordsTheNeed(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(RecordDir, dir)
	t.Setenv("CI", "")
	for range 2 {
		Missing(&recorder{TB: t}, "slapd", "apt-get install slapd ldap-utils", nil)
	}
	needs, err := ReadNeeds(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Need{"slapd", "apt-get install slapd ldap-utils"}
	if len(needs) != 2 || needs[0] != want || needs[1] != want {
		t.Errorf("recorded %v, want two of %v", needs, want)
	}
}

func TestMissingUnderCIRecordsNothing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(RecordDir, dir)
	t.Setenv("CI", "true")
	Missing(&recorder{TB: t}, "slapd", "apt-get install slapd", nil)
	if needs, _ := ReadNeeds(dir); len(needs) != 0 {
		t.Errorf("a failure was recorded as a skip: %v", needs)
	}
}

func TestSummary(t *testing.T) {
	redis := Need{"Redis at redis://127.0.0.1:6379/0", "apt-get install redis-server"}
	slapd := Need{"slapd", "apt-get install slapd ldap-utils"}
	tests := []struct {
		name    string
		skipped int
		needs   []Need
		want    string
	}{
		{"nothing skipped", 0, nil, "Skipped: none."},
		{"most needed first, then by design", 6, []Need{slapd, redis, redis, redis},
			"Skipped 6 tests. Redis at redis://127.0.0.1:6379/0 (apt-get install redis-server): 3; slapd (apt-get install slapd ldap-utils): 1; by design (run with -v to see why): 2."},
		{"only by design", 1, nil, "Skipped 1 test. by design (run with -v to see why): 1."},
	}
	for _, tt := range tests {
		if got := Summary(tt.skipped, tt.needs); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestCountSkips(t *testing.T) {
	events := `{"Action":"run","Test":"TestA"}
{"Action":"skip","Test":"TestA"}
{"Action":"skip","Test":"TestB/sub"}
{"Action":"pass","Test":"TestC"}
{"Action":"skip","Package":"p"}
`
	n, err := CountSkips(strings.NewReader(events))
	if err != nil || n != 2 {
		t.Errorf("CountSkips = %d, %v; want 2 (tests, not a package without tests)", n, err)
	}
}
