package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
)

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
			clk := clock.NewManual(time.Unix(1767225600, 0))
			l := newRedisLogger(func() *zap.Logger { return zap.New(core) }, clk, 10*time.Second)
			for _, ln := range tt.lines {
				clk.Advance(ln.after)
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

// TestCheckRedis loads the store's check against real servers: one that
// does not answer only warns (the site must load); one that keeps its data
// passes in silence; one that would forget is refused with the option that
// accepts it named, and with that option set it loads with a warning.
func TestCheckRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		conf    []string // for startRedis; nil: no server
		cfg     *Store
		refused string // the option the error names; "" loads
		warn    bool
	}{
		{name: "redis that does not answer", warn: true},
		{name: "AOF", conf: []string{"appendonly yes"}},
		{name: "RDB save points", conf: []string{"save 900 1"}},
		{name: "nothing on disk", conf: []string{}, refused: optAllowVolatile},
		{name: "nothing on disk, allowed", conf: []string{}, cfg: &Store{AllowVolatile: true}, warn: true},
		{name: "evicting", conf: []string{"appendonly yes", "maxmemory 64mb", "maxmemory-policy allkeys-lru"}, refused: optAllowEviction},
		{name: "evicting keys with a time to live", conf: []string{"appendonly yes", "maxmemory-policy volatile-lru"}, refused: optAllowEviction},
		{name: "evicting, allowed", conf: []string{"appendonly yes", "maxmemory-policy allkeys-lru"}, cfg: &Store{AllowEviction: true}, warn: true},
		{name: "evicting and nothing on disk, eviction allowed", conf: []string{"maxmemory-policy allkeys-lru"}, cfg: &Store{AllowEviction: true}, refused: optAllowVolatile},
		// A managed server without CONFIG: INFO says AOF is on, and the policy.
		{name: "no CONFIG, AOF", conf: []string{"appendonly yes", `rename-command CONFIG ""`}},
		{name: "no CONFIG, evicting", conf: []string{"appendonly yes", "maxmemory-policy allkeys-lfu", `rename-command CONFIG ""`}, refused: optAllowEviction},
		// INFO does not show RDB save points: with AOF off, it cannot be told.
		{name: "no CONFIG, AOF off", conf: []string{"save 900 1", `rename-command CONFIG ""`}, refused: optAllowVolatile},
		{name: "no CONFIG, AOF off, allowed", conf: []string{"save 900 1", `rename-command CONFIG ""`}, cfg: &Store{AllowVolatile: true}, warn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.cfg == nil {
				tt.cfg = &Store{}
			}
			tt.cfg.URL = redisTestDownURL(t)
			if tt.conf != nil {
				tt.cfg.URL = "redis://" + startRedis(t, tt.conf...).addr + "/0"
			}
			rs, err := openStore(tt.cfg, clock.Real{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rs.Close() })
			core, logs := zapobs.New(zapcore.DebugLevel)
			began := time.Now()
			err = rs.check(context.Background(), zap.New(core), time.Second)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("check took %v, want it bounded by the dial timeout", took)
			}
			switch u, ok := errors.AsType[*UnsafeServerError](err); {
			case tt.refused == "" && err != nil:
				t.Fatalf("check: %v, want the server accepted", err)
			case tt.refused != "" && !ok:
				t.Fatalf("check: %v, want the server refused naming %s", err, tt.refused)
			case tt.refused != "" && (u.Option != tt.refused || !strings.Contains(err.Error(), "set "+tt.refused+" to accept")):
				t.Fatalf("check: %v, want the option %s named", err, tt.refused)
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).Len() > 0
			if tt.refused == "" && warned != tt.warn {
				t.Errorf("warned = %v, want %v: %v", warned, tt.warn, logs.All())
			}
		})
	}
}

// TestRedisModuleRefusesVolatile loads and opens the storage module as a
// config would: a server that keeps nothing on disk fails the load with a
// message that names allow_volatile, and loads with it.
func TestRedisModuleRefusesVolatile(t *testing.T) {
	t.Parallel()
	url := "redis://" + startRedis(t).addr + "/0"
	s, err := loadStorage(t, `{"url": "`+url+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Open()
	if err == nil || !strings.Contains(err.Error(), "storage redis: redis keeps nothing on disk") ||
		!strings.Contains(err.Error(), "set allow_volatile to accept this") {
		t.Fatalf("load of a server that keeps nothing on disk: %v, want it refused naming allow_volatile", err)
	}
	s, err = loadStorage(t, `{"url": "`+url+`", "allow_volatile": true}`)
	if err != nil {
		t.Fatalf("load with allow_volatile: %v", err)
	}
	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
