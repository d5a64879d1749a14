package module

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	ulimiter "github.com/ulule/limiter/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// redisTestURL is the Redis the tests of this package use: $REDIS_URL, or
// a local server.
func redisTestURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// redisTestStore returns a store on redisTestURL under a prefix of its own,
// and the prefix, or skips tb when Redis does not answer (fails it when
// CI=true). The keys under the prefix are removed when tb ends.
func redisTestStore(tb testing.TB) (*storage.Redis, string) {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	prefix := "smsrec-test-" + hex.EncodeToString(b) + ":"
	rs, err := storage.NewRedis(storage.RedisConfig{URL: redisTestURL(), Prefix: prefix}, recovery.SystemClock{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		rs.Close()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("Redis does not answer and CI=true: %v", err)
		}
		tb.Skipf("skipping: Redis does not answer (%v); start one or set REDIS_URL", err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := rs.Client().Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rs.Client().Unlink(ctx, iter.Val())
		}
		rs.Close()
	})
	return rs, prefix
}

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

func TestProvisionRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		backend  func(t *testing.T) (backend, string)
		wantWarn bool
	}{
		{
			name: "memory storage",
			backend: func(t *testing.T) (backend, string) {
				m, err := storage.NewMemory(100, recovery.SystemClock{})
				if err != nil {
					t.Fatal(err)
				}
				return m, ""
			},
		},
		{
			name: "redis that does not answer",
			backend: func(t *testing.T) (backend, string) {
				url := redisTestDownURL(t)
				rs, err := storage.NewRedis(storage.RedisConfig{URL: url}, recovery.SystemClock{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rs.Close() })
				return rs, url
			},
			wantWarn: true,
		},
		{
			name: "redis that answers",
			backend: func(t *testing.T) (backend, string) {
				rs, _ := redisTestStore(t)
				return rs, redisTestURL()
			},
		},
		{
			name: "redis that evicts keys when full",
			backend: func(t *testing.T) (backend, string) {
				url := evictingRedis(t)
				rs, err := storage.NewRedis(storage.RedisConfig{URL: url}, recovery.SystemClock{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rs.Close() })
				return rs, url
			},
			wantWarn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, url := tt.backend(t)
			core, logs := zapobs.New(zapcore.DebugLevel)
			h := &Handler{Storage: &Storage{}, store: &pooledStore{backend: b}, logger: zap.New(core)}
			if url != "" {
				h.Storage.Redis = &RedisStorage{URL: url, DialTimeout: caddy.Duration(time.Second)}
			}
			began := time.Now()
			h.provisionRedis(context.Background())
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("provisionRedis took %v, want it bounded by the dial timeout", took)
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).Len() > 0
			if warned != tt.wantWarn {
				t.Errorf("warned = %v, want %v: %v", warned, tt.wantWarn, logs.All())
			}
		})
	}
}

func TestRedisCounters(t *testing.T) {
	t.Parallel()
	rate := ulimiter.Rate{Limit: 10, Period: time.Hour}

	t.Run("fails while redis is down and works once it answers", func(t *testing.T) {
		t.Parallel()
		_, prefix := redisTestStore(t)
		opts, err := redis.ParseURL(redisTestURL())
		if err != nil {
			t.Skipf("skipping: needs a redis:// URL: %v", err)
		}
		var down atomic.Bool
		down.Store(true)
		var d net.Dialer
		opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() {
				return nil, errors.New("connection refused")
			}
			return d.DialContext(ctx, network, addr)
		}
		client := redis.NewClient(opts)
		t.Cleanup(func() { client.Close() })
		c := newRedisCounters(client, prefix+"limit")
		ctx := context.Background()
		calls := map[string]func() error{
			"Get":       func() error { _, err := c.Get(ctx, "k", rate); return err },
			"Peek":      func() error { _, err := c.Peek(ctx, "k", rate); return err },
			"Reset":     func() error { _, err := c.Reset(ctx, "k", rate); return err },
			"Increment": func() error { _, err := c.Increment(ctx, "k", 1, rate); return err },
		}
		for name, call := range calls {
			if err := call(); err == nil {
				t.Errorf("%s while redis is down succeeded", name)
			}
		}
		down.Store(false)
		// go-redis may refuse at once for a while after failed dials.
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := c.Get(ctx, "k", rate)
			if err == nil {
				if got.Remaining != rate.Limit-1 {
					t.Errorf("first Get once up: %d remaining, want %d", got.Remaining, rate.Limit-1)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Get once redis is up: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("counts on redis", func(t *testing.T) {
		t.Parallel()
		rs, prefix := redisTestStore(t)
		c := newRedisCounters(rs.Client(), prefix+"limit")
		ctx := context.Background()
		for want := int64(1); want <= 3; want++ {
			got, err := c.Get(ctx, "k", rate)
			if err != nil {
				t.Fatal(err)
			}
			if used := rate.Limit - got.Remaining; used != want {
				t.Errorf("after %d Get: %d used, want %d", want, used, want)
			}
		}
		if got, err := c.Increment(ctx, "k", 2, rate); err != nil || got.Remaining != 5 {
			t.Errorf("Increment by 2 = %d remaining, %v; want 5", got.Remaining, err)
		}
		if got, err := c.Peek(ctx, "k", rate); err != nil || got.Remaining != 5 {
			t.Errorf("Peek = %d remaining, %v; want 5", got.Remaining, err)
		}
		if _, err := c.Reset(ctx, "k", rate); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Peek(ctx, "k", rate); err != nil || got.Remaining != 10 {
			t.Errorf("Peek after Reset = %d remaining, %v; want 10", got.Remaining, err)
		}
	})
}
