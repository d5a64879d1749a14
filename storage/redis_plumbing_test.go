package storage

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// evictingRedis starts a redis-server of its own whose maxmemory-policy
// evicts keys, on a free port, and returns its URL. It skips t when there is
// no redis-server to run (fails it when CI=true).
func evictingRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no redis-server and CI=true: %v", err)
		}
		t.Skipf("skipping: no redis-server to start (%v)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// It says when it listens.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("redis-server on port %s ended before it was ready", port)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("redis-server on port %s is not ready after 10s", port)
	}
	return "redis://127.0.0.1:" + port + "/0"
}

// redisTestDownURL returns the URL of a local port where nothing listens.
func redisTestDownURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "redis://" + addr + "/0"
}

// redisTestClock is a clock the test moves.
type redisTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *redisTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *redisTestClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRedisLogger(t *testing.T) {
	t.Parallel()
	const dial = "redis: connection pool: failed to dial after %d attempts: %v"
	const hook = "redis: connection pool: conn[%d] rejected by hook, returning to pool"
	type line struct {
		after  time.Duration // since the previous line
		format string
		arg    any
	}
	type logged struct {
		detail     string
		suppressed int64 // 0: no field
	}
	tests := []struct {
		name  string
		lines []line
		want  []logged
	}{
		{
			name:  "a line is written without go-redis's prefix",
			lines: []line{{0, dial, "connection refused"}},
			want:  []logged{{detail: "connection pool: failed to dial after 1 attempts: connection refused"}},
		},
		{
			name: "repeats within the interval are held back and counted in the next line",
			lines: []line{
				{0, dial, "a"}, {time.Second, dial, "b"}, {time.Second, dial, "c"},
				{10 * time.Second, dial, "d"}, {time.Second, dial, "e"},
			},
			want: []logged{
				{detail: "connection pool: failed to dial after 1 attempts: a"},
				{detail: "connection pool: failed to dial after 1 attempts: d", suppressed: 2},
			},
		},
		{
			name:  "kinds are limited apart",
			lines: []line{{0, dial, "a"}, {0, hook, nil}, {time.Second, dial, "b"}, {time.Second, hook, nil}},
			want: []logged{
				{detail: "connection pool: failed to dial after 1 attempts: a"},
				{detail: "connection pool: conn[1] rejected by hook, returning to pool"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := zapobs.New(zapcore.DebugLevel)
			clock := &redisTestClock{now: time.Unix(1767225600, 0)}
			l := newRedisLogger(func() *zap.Logger { return zap.New(core) }, clock, 10*time.Second)
			for _, ln := range tt.lines {
				clock.advance(ln.after)
				if ln.arg == nil {
					l.Printf(context.Background(), ln.format, 1)
				} else {
					l.Printf(context.Background(), ln.format, 1, ln.arg)
				}
			}
			entries := logs.All()
			if len(entries) != len(tt.want) {
				t.Fatalf("logged %d lines, want %d: %v", len(entries), len(tt.want), entries)
			}
			for i, e := range entries {
				fields := e.ContextMap()
				if e.Level != zapcore.WarnLevel || e.Message != "redis client" {
					t.Errorf("line %d: %s %q, want a warning \"redis client\"", i, e.Level, e.Message)
				}
				if fields["detail"] != tt.want[i].detail {
					t.Errorf("line %d: detail %q, want %q", i, fields["detail"], tt.want[i].detail)
				}
				got, _ := fields["suppressed"].(int64)
				if got != tt.want[i].suppressed {
					t.Errorf("line %d: suppressed %v, want %d", i, fields["suppressed"], tt.want[i].suppressed)
				}
			}
		})
	}
}

func TestCheckRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		store    func(t *testing.T) *Redis
		wantWarn bool
	}{
		{
			name: "redis that does not answer",
			store: func(t *testing.T) *Redis {
				rs, err := NewRedis(RedisConfig{URL: redisTestDownURL(t)}, recovery.SystemClock{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rs.Close() })
				return rs
			},
			wantWarn: true,
		},
		{
			name:  "redis that answers",
			store: func(t *testing.T) *Redis { return newTestRedis(t, recovery.SystemClock{}) },
		},
		{
			name: "redis that evicts keys when full",
			store: func(t *testing.T) *Redis {
				rs, err := NewRedis(RedisConfig{URL: evictingRedis(t)}, recovery.SystemClock{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rs.Close() })
				return rs
			},
			wantWarn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs := tt.store(t)
			core, logs := zapobs.New(zapcore.DebugLevel)
			began := time.Now()
			checkRedis(context.Background(), zap.New(core), rs, time.Second)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("checkRedis took %v, want it bounded by the dial timeout", took)
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).Len() > 0
			if warned != tt.wantWarn {
				t.Errorf("warned = %v, want %v: %v", warned, tt.wantWarn, logs.All())
			}
		})
	}
}
