package main

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

func TestParseCompareFlags(t *testing.T) {
	t.Parallel()
	c, err := parseCompareFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.rows, ",") != strings.Join(compareRows, ",") || c.runs != 3 || c.floodIPs != 1_000_000 || c.floodAccounts != 200_000 {
		t.Errorf("defaults %+v", c)
	}
	c, err = parseCompareFlags([]string{"-rows", "start, p99", "-runs", "5"}, io.Discard)
	if err != nil || strings.Join(c.rows, ",") != "start,p99" || c.runs != 5 {
		t.Errorf("-rows start,p99 -runs 5: %+v %v", c, err)
	}
	for _, args := range [][]string{{"-rows", "start,nope"}, {"-runs", "0"}, {"-flood-ips", "0"}} {
		if _, err := parseCompareFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestClientIPsAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := range 1 << 17 {
		ip := clientIP(i)
		if seen[ip] {
			t.Fatalf("clientIP(%d) = %s repeats", i, ip)
		}
		seen[ip] = true
	}
}

func TestProcReadings(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("skipped: no /proc here; compare runs on Linux only")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("skipped: needs the sleep command (apt-get install coreutils) (%v)", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &proc{cmd: cmd, exited: exited}
	defer p.stop()
	if cpu, err := p.cpu(); err != nil || cpu < 0 {
		t.Errorf("cpu() = %v, %v", cpu, err)
	}
	if rss, err := p.peakRSS(); err != nil || rss <= 0 {
		t.Errorf("peakRSS() = %v MiB, %v", rss, err)
	}
}

// TestRedisCPU reads the CPU time of the machine's Redis, when there is
// one, and checks that it only grows.
func TestRedisCPU(t *testing.T) {
	url := "redis://127.0.0.1:6379/15"
	if err := redisReachable(url); err != nil {
		testenv.Missing(t, "Redis at "+url, "apt-get install redis-server", err)
	}
	a, err := redisCPU(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisCPU(url)
	if err != nil {
		t.Fatal(err)
	}
	if a <= 0 || b < a {
		t.Fatalf("Redis CPU %v then %v", a, b)
	}
}
