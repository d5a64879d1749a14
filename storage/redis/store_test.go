package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/redis/go-redis/v9"
	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// pingTestRedis checks once whether the test server answers, through the
// project's own client so that every URL form it accepts works here too.
var pingTestRedis = sync.OnceValue(func() error {
	r, err := openStore(&Store{URL: redistest.URL(), AllowVolatile: true}, clock.Real{})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return r.Ping(ctx)
})

// requireRedis skips the test when the test server does not answer, or
// fails it when CI=true.
func requireRedis(tb testing.TB) {
	tb.Helper()
	redistest.Require(tb, pingTestRedis())
}

// openStore makes the client of s, reading the time from clk, as Open
// does but without the checks at load.
func openStore(s *Store, clk recovery.Clock) (*Store, error) {
	s.clock = clk
	return s, s.connect()
}

// newTestRedis returns a store on the test server under a prefix of its
// own, whose keys are deleted when the test ends.
func newTestRedis(tb testing.TB, clock recovery.Clock) *Store {
	tb.Helper()
	requireRedis(tb)
	return newTestRedisAt(tb, redistest.URL(), clock)
}

// newTestRedisAt is newTestRedis on the server at url.
func newTestRedisAt(tb testing.TB, url string, clock recovery.Clock) *Store {
	tb.Helper()
	prefix := redistest.NewPrefix()
	// The test servers keep nothing on disk, and are meant to.
	r, err := openStore(&Store{URL: url, Prefix: prefix, AllowVolatile: true}, clock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	redistest.Sweep(tb, r.Client(), prefix)
	return r
}

// serverTime is the wall clock for the contract suite against a real Redis
// server, the one place where tests let real time pass: the server drops a
// record when its time to live runs out by the server's own clock, which no
// manual clock moves, so letting d pass for the store means sleeping d.
type serverTime struct{ clock.Real }

// Advance sleeps for d.
func (serverTime) Advance(d time.Duration) { time.Sleep(d) }

func redisHarness() storagetest.Harness {
	return storagetest.Harness{
		New: func(tb testing.TB) (storagetest.Store, storagetest.Clock) {
			return newTestRedis(tb, serverTime{}), serverTime{}
		},
		// Server-side times to live follow real time, so the suite sleeps;
		// 100ms leaves room for round trips under -race on a busy machine.
		Unit: 100 * time.Millisecond,
	}
}

func TestRedisContract(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	storagetest.Run(t, redisHarness())
}

func TestRedisKeysExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRedis(t, clock.Real{})
	now := time.Now()
	steps := []struct {
		name string
		run  func() error
	}{
		{"CreateFlow", func() error {
			return storagetest.CreateFlow(ctx, r, recovery.Flow{ID: "f1", SentAt: now, ExpiresAt: now.Add(time.Minute)})
		}},
		{"Attempt", func() error { _, err := storagetest.Attempt(ctx, r, "f1", 5); return err }},
		{"Resend", func() error {
			_, err := storagetest.Resend(ctx, r, "f1", []byte("h2"), recovery.ResendOp{Now: now.Add(30 * time.Second), Interval: 0, ExpiresAt: now.Add(2 * time.Minute)})
			return err
		}},
		{"PutToken", func() error {
			return storagetest.PutToken(ctx, r, recovery.Token{Hash: []byte("t1"), ExpiresAt: now.Add(time.Minute)})
		}},
		{"BeginSpend", func() error { _, err := r.BeginSpend(ctx, []byte("t1"), time.Second); return err }},
		{"EndSpend", func() error { return r.EndSpend(ctx, []byte("t1"), false) }},
		{"EndSpendUnknown", func() error { return r.EndSpend(ctx, []byte("gone"), false) }},
		{"StrikeIP", func() error {
			_, err := storagetest.Strike(ctx, r, recovery.KindIP, "192.0.2.1", recovery.Policy{Threshold: 1, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Minute})
			return err
		}},
		{"StrikeIPNoLock", func() error {
			_, err := storagetest.Strike(ctx, r, recovery.KindIP, "192.0.2.2", recovery.Policy{Threshold: 5, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Minute})
			return err
		}},
		{"StrikeAccount", func() error {
			_, err := storagetest.Strike(ctx, r, recovery.KindAccount, "alice", recovery.Policy{Threshold: 1, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Hour, Run: true, Permanent: 100})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}

	keys, err := redistest.Keys(ctx, r.Client(), r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	// A flow, a token and two client records live as long as they count;
	// an account's run of wrong codes and the lock indexes are kept until
	// a correct code or support ends them, and the epoch for as long as the
	// deployment, by design.
	kept := map[string]bool{
		r.lockKey(recovery.KindAccount, "alice"): true,
		r.lockIndex(recovery.KindAccount):        true,
		r.lockIndex(recovery.KindIP):             true,
		r.epochKey():                             true,
	}
	if len(keys) != 8 {
		t.Errorf("keys written: got %d %q, want 8", len(keys), keys)
	}
	for _, k := range keys {
		ttl, err := r.Client().PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if kept[k] != (ttl < 0) {
			t.Errorf("key %s: PTTL %v, want a time to live: %v", k, ttl, !kept[k])
		}
	}
}

func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	servers := []struct {
		name string
		cfg  func(t *testing.T) *Store
	}{
		{"refused", func(*testing.T) *Store {
			return &Store{URL: "redis://127.0.0.1:1/0"}
		}},
		{"silent", func(t *testing.T) *Store {
			return &Store{URL: "redis://" + silentServer(t) + "/0", Timeout: caddy.Duration(200 * time.Millisecond)}
		}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			cfg := srv.cfg(t)
			r, err := openStore(cfg, clock.Real{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			// Each try dials once and waits for one reply; there are two tries.
			limit := 2 * (defaultDialTimeout + cmp.Or(time.Duration(cfg.Timeout), defaultReadTimeout))
			for _, op := range unavailableOps(r) {
				t.Run(op.name, func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					err := op.run()
					if !errors.Is(err, recovery.ErrUnavailable) {
						t.Errorf("got %v, want an error matching ErrUnavailable", err)
					}
					if elapsed := time.Since(start); elapsed > limit {
						t.Errorf("took %v, more than the %v the timeouts allow", elapsed, limit)
					}
				})
			}
		})
	}
}

// silentServer listens on a local port, accepts connections and never
// answers, like a server that hangs. It returns the address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

type namedOp struct {
	name string
	run  func() error
}

// unavailableOps calls every method of r once.
func unavailableOps(r *Store) []namedOp {
	ctx := context.Background()
	now := time.Now()
	return []namedOp{
		{"Ping", func() error { return r.Ping(ctx) }},
		{"CreateFlow", func() error {
			return storagetest.CreateFlow(ctx, r, recovery.Flow{ID: "f", ExpiresAt: now.Add(time.Minute)})
		}},
		{"Flow", func() error { _, err := r.Flow(ctx, "f"); return err }},
		{"Attempt", func() error { _, err := storagetest.Attempt(ctx, r, "f", 5); return err }},
		{"ConsumeFlow", func() error { _, err := storagetest.Consume(ctx, r, "f"); return err }},
		{"Resend", func() error {
			_, err := storagetest.Resend(ctx, r, "f", nil, recovery.ResendOp{Now: now, Interval: 0, ExpiresAt: now.Add(time.Minute)})
			return err
		}},
		{"PutToken", func() error {
			return storagetest.PutToken(ctx, r, recovery.Token{Hash: []byte("t"), ExpiresAt: now.Add(time.Minute)})
		}},
		{"BeginSpend", func() error { _, err := r.BeginSpend(ctx, []byte("t"), time.Second); return err }},
		{"EndSpend", func() error { return r.EndSpend(ctx, []byte("t"), true) }},
		{"Strike", func() error {
			_, err := storagetest.Strike(ctx, r, recovery.KindIP, "k", recovery.Policy{Threshold: 1, Window: time.Minute, Duration: time.Minute})
			return err
		}},
		{"Forgive", func() error { return storagetest.Forgive(ctx, r, recovery.KindIP, "k", recovery.Policy{}) }},
		{"GetLock", func() error { _, _, err := storagetest.GetLock(ctx, r, recovery.KindIP, "k"); return err }},
		{"EndRun", func() error { _, err := r.EndRun(ctx, recovery.KindIP, "k"); return err }},
		{"ListLocks", func() error { _, err := r.ListLocks(ctx, recovery.KindIP); return err }},
	}
}

// serverError is a reply error as the server would send it.
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

func TestRedisError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		notFound    bool
		unavailable bool
	}{
		{"nil reply", redis.Nil, true, false},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false, true},
		{"timeout", context.DeadlineExceeded, false, true},
		{"closed client", redis.ErrClosed, false, true},
		{"pool timeout", redis.ErrPoolTimeout, false, true},
		{"eof", io.EOF, false, true},
		{"loading", serverError("LOADING Redis is loading the dataset in memory"), false, true},
		{"read only", serverError("READONLY You can't write against a read only replica."), false, true},
		{"out of memory", serverError("OOM command not allowed when used memory > 'maxmemory'."), false, true},
		{"busy script", serverError("BUSY Redis is busy running a script."), false, true},
		{"cluster down", serverError("CLUSTERDOWN The cluster is down"), false, true},
		{"wrong type", serverError("WRONGTYPE Operation against a key holding the wrong kind of value"), false, false},
		{"script error", serverError("ERR Error running script"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := redisError("op", tt.err)
			if got := errors.Is(err, recovery.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
			if got := errors.Is(err, recovery.ErrUnavailable); got != tt.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tt.unavailable)
			}
			if !tt.notFound && !errors.Is(err, tt.err) {
				t.Errorf("%v does not wrap %v", err, tt.err)
			}
		})
	}
	if err := redisError("op", nil); err != nil {
		t.Errorf("redisError(nil) = %v", err)
	}
}

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *Store
		// check inspects the options; nil when the URL must be refused.
		check func(t *testing.T, o *redis.UniversalOptions)
	}{
		{
			name: "single server with defaults",
			cfg:  &Store{URL: "redis://:s3cret@cache.internal:6380/2"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[cache.internal:6380]")
				want(t, "db", o.DB, 2)
				want(t, "password", o.Password, "s3cret")
				want(t, "tls", o.TLSConfig != nil, false)
				want(t, "dial timeout", o.DialTimeout, 2*time.Second)
				want(t, "read timeout", o.ReadTimeout, time.Second)
				want(t, "write timeout", o.WriteTimeout, time.Second)
				want(t, "pool size", o.PoolSize, 32)
				want(t, "max retries", o.MaxRetries, 1)
				want(t, "context timeouts", o.ContextTimeoutEnabled, true)
			},
		},
		{
			name: "tls",
			cfg:  &Store{URL: "rediss://user:pw@cache.example.com:6380"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "tls server name", o.TLSConfig.ServerName, "cache.example.com")
				want(t, "username", o.Username, "user")
				want(t, "password", o.Password, "pw")
			},
		},
		{
			name: "config beats url beats default",
			cfg: &Store{
				URL:      "redis://127.0.0.1:6379?dial_timeout=5s&read_timeout=3s&pool_size=7",
				Timeout:  caddy.Duration(250 * time.Millisecond),
				PoolSize: 9,
			},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "dial timeout", o.DialTimeout, 5*time.Second)
				want(t, "read timeout", o.ReadTimeout, 250*time.Millisecond)
				want(t, "write timeout", o.WriteTimeout, 250*time.Millisecond)
				want(t, "pool size", o.PoolSize, 9)
			},
		},
		{
			name: "sentinel",
			cfg:  &Store{URL: "redis-sentinel://:m%40ster@10.0.0.1:26379,[2001:db8::2]:26379,s3:26379/3?master=mymaster&sentinel_password=sp"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[10.0.0.1:26379 [2001:db8::2]:26379 s3:26379]")
				want(t, "master", o.MasterName, "mymaster")
				want(t, "password", o.Password, "m@ster")
				want(t, "sentinel password", o.SentinelPassword, "sp")
				want(t, "db", o.DB, 3)
				want(t, "cluster", o.IsClusterMode, false)
				want(t, "read timeout", o.ReadTimeout, time.Second)
			},
		},
		{
			name: "sentinel without password or db",
			cfg:  &Store{URL: "redis-sentinel://s1:26379?master=m"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[s1:26379]")
				want(t, "password", o.Password, "")
				want(t, "db", o.DB, 0)
			},
		},
		{
			name: "cluster",
			cfg:  &Store{URL: "redis-cluster://:pw@n1:7000,n2:7001"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[n1:7000 n2:7001]")
				want(t, "cluster", o.IsClusterMode, true)
				want(t, "password", o.Password, "pw")
				want(t, "master", o.MasterName, "")
				want(t, "pool size", o.PoolSize, 32)
			},
		},
		{
			name: "cluster with go-redis options",
			cfg:  &Store{URL: "redis-cluster://n1:7000,n2:7001?read_only=true&dial_timeout=3s&max_redirects=5"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[n1:7000 n2:7001]")
				want(t, "read only", o.ReadOnly, true)
				want(t, "dial timeout", o.DialTimeout, 3*time.Second)
				want(t, "max redirects", o.MaxRedirects, 5)
			},
		},
		{
			name: "sentinel with go-redis options",
			cfg:  &Store{URL: "redis-sentinel://u:pw@s1:26379,s2:26379?master=m&pool_size=7&read_timeout=2s"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "addrs", fmt.Sprint(o.Addrs), "[s1:26379 s2:26379]")
				want(t, "username", o.Username, "u")
				want(t, "password", o.Password, "pw")
				want(t, "sentinel password", o.SentinelPassword, "")
				want(t, "pool size", o.PoolSize, 7)
				want(t, "read timeout", o.ReadTimeout, 2*time.Second)
			},
		},
		{
			name: "cluster of one node stays a cluster",
			cfg:  &Store{URL: "redis-cluster://n1:7000/"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				want(t, "cluster", o.IsClusterMode, true)
			},
		},
		{name: "no scheme", cfg: &Store{URL: "127.0.0.1:6379"}},
		{name: "unknown scheme", cfg: &Store{URL: "memcache://127.0.0.1:11211"}},
		{name: "bad single url", cfg: &Store{URL: "redis://:s3cret@host:6379/x"}},
		{name: "single url unknown option", cfg: &Store{URL: "redis://host:6379?colour=red"}},
		{name: "sentinel without master", cfg: &Store{URL: "redis-sentinel://:s3cret@s1:26379,s2:26379/0"}},
		{name: "sentinel bad db", cfg: &Store{URL: "redis-sentinel://s1:26379/zero?master=m"}},
		{name: "sentinel unknown option", cfg: &Store{URL: "redis-sentinel://s1:26379?master=m&colour=red"}},
		{name: "sentinel host without port", cfg: &Store{URL: "redis-sentinel://:s3cret@s1,s2:26379?master=m"}},
		{name: "sentinel empty host", cfg: &Store{URL: "redis-sentinel://s1:26379,?master=m"}},
		{name: "cluster with db", cfg: &Store{URL: "redis-cluster://n1:7000/1"}},
		{name: "cluster unknown option", cfg: &Store{URL: "redis-cluster://n1:7000?colour=red"}},
		{name: "cluster addr option", cfg: &Store{URL: "redis-cluster://n1:7000?addr=n9:7000"}},
		{name: "sentinel password option", cfg: &Store{URL: "redis-sentinel://s1:26379?master=m&password=x"}},
		{name: "password with a slash", cfg: &Store{URL: "redis-cluster://:s3cret/x@n1:7000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := tt.cfg.options()
			if tt.check == nil {
				if err == nil {
					t.Fatalf("options(%q) = %+v, want an error", tt.cfg.URL, o)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("options(%q): %v", tt.cfg.URL, err)
			}
			tt.check(t, o)
		})
	}
}

func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   *Store
		clock recovery.Clock
		ok    bool
	}{
		{"single", &Store{URL: "redis://127.0.0.1:6379", Prefix: "smsrec:"}, clock.Real{}, true},
		{"sentinel", &Store{URL: "redis-sentinel://127.0.0.1:26379?master=m"}, clock.Real{}, true},
		{"cluster", &Store{URL: "redis-cluster://127.0.0.1:7000,127.0.0.1:7001"}, clock.Real{}, true},
		{"braces in prefix", &Store{URL: "redis://127.0.0.1:6379", Prefix: "{smsrec}:"}, clock.Real{}, false},
		{"bad url", &Store{URL: "http://127.0.0.1"}, clock.Real{}, false},
		{"sentinel min replicas", &Store{URL: "redis-sentinel://127.0.0.1:26379?master=m&min_replicas=1"}, clock.Real{}, true},
		{"sentinel bad min replicas", &Store{URL: "redis-sentinel://127.0.0.1:26379?master=m&min_replicas=-1"}, clock.Real{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := openStore(tt.cfg, tt.clock)
			if (err == nil) != tt.ok {
				t.Fatalf("connect: got error %v, want success %v", err, tt.ok)
			}
			if err == nil {
				if strings.Contains(tt.name, "min replicas") && r.minReplicas != 1 {
					t.Errorf("min replicas: got %d, want 1", r.minReplicas)
				}
				if r.Client() == nil {
					t.Error("Client() is nil")
				}
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

func BenchmarkRedis(b *testing.B) {
	requireRedis(b)
	storagetest.Benchmark(b, redisHarness())
}

// TestRedisCounterTimeToLive checks the windows of counters: the first count
// opens the window, a count within the limit leaves it as it is, and a
// counter whose key lost its time to live (PERSIST by hand) gets a whole
// window back at its first refusal, which reports when that window ends,
// rather than counting for good.
func TestRedisCounterTimeToLive(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Unix(1_800_000_000, 0))
	r := newTestRedis(t, clk)
	ctx := context.Background()
	count := recovery.Plan{Counts: []recovery.Count{{Scope: limiter.ScopeStartPhone, Key: "p-" + rand.Text(), Rate: ulimiter.Rate{Limit: 2, Period: time.Hour}}}}
	key := r.base + "count:" + limiter.ScopeStartPhone + ":" + count.Counts[0].Key
	run := func(what string) recovery.Outcome {
		t.Helper()
		o, err := r.RunPlan(ctx, &count)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return o
	}
	ttl := func() time.Duration {
		t.Helper()
		d, err := r.Client().PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	if o := run("first count"); o.Refused != recovery.StepNone {
		t.Fatalf("first count refused: %+v", o)
	}
	if d := ttl(); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("after the first count the window has %v left, want about an hour", d)
	}
	if err := r.Client().Persist(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if o := run("second count"); o.Refused != recovery.StepNone {
		t.Fatalf("second count, within the limit, refused: %+v", o)
	}
	o := run("third count")
	if o.Refused != recovery.StepCount || !o.Counter.Reached || o.Counter.Remaining != 0 || o.Counter.Limit != 2 {
		t.Fatalf("third count of a limit of 2: %+v, want refused, over the limit", o)
	}
	// Reset is the clock's now and the server's time to live, in seconds.
	if left := time.Unix(o.Counter.Reset, 0).Sub(clk.Now()); left < time.Hour-2*time.Second || left > time.Hour {
		t.Errorf("refusal resets %v from now, want an hour", left)
	}
	if d := ttl(); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("after the refusal the window has %v left, want about an hour", d)
	}
}

// BenchmarkRedisPlanLua times the plans of a /start on the server alone:
// the start's own plan (two lock checks, two counts, the new flow) and the
// SMS check before its code goes out (two counts), each run b.N times in
// a few scripts, so with next to no round trip, protocol or client in the
// time.
func BenchmarkRedisPlanLua(b *testing.B) {
	requireRedis(b)
	r := newTestRedis(b, clock.Real{})
	ctx := context.Background()
	now := time.Now()
	plans := []struct {
		name string
		plan recovery.Plan
	}{
		{"start", recovery.Plan{
			Locks: []recovery.LockCheck{{Kind: recovery.KindIP, Key: "203.0.113.9"}, {Kind: recovery.KindAccount, Key: "alice@example.com"}},
			Counts: []recovery.Count{
				{Scope: limiter.ScopeStartIP, Key: "203.0.113.9", Rate: ulimiter.Rate{Limit: 1 << 40, Period: time.Hour}},
				{Scope: limiter.ScopeStartAccount, Key: "alice@example.com", Rate: ulimiter.Rate{Limit: 1 << 40, Period: time.Hour}},
			},
			Op: recovery.OpCreate,
			Flow: recovery.Flow{ID: "0123456789abcdef01234567", Account: "alice@example.com", CodeHash: make([]byte, 32),
				SentAt: now, ExpiresAt: now.Add(10 * time.Minute), Lang: "en", PhoneMasked: "+31*****678"},
		}},
		{"sms", recovery.Plan{Counts: []recovery.Count{
			{Scope: limiter.ScopeStartPhone, Key: "phone", Rate: ulimiter.Rate{Limit: 1 << 40, Period: time.Hour}},
			{Scope: limiter.ScopeSMSGlobal, Rate: ulimiter.Rate{Limit: 1 << 40, Period: time.Hour}},
		}}},
	}
	// The count of plans follows the plan's arguments, which it ignores.
	loop := redis.NewScript(countLua + planLua + "for n = 1, tonumber(ARGV[#ARGV]) do plan(KEYS, ARGV) end\nreturn 0\n")
	for _, p := range plans {
		b.Run(p.name, func(b *testing.B) {
			e, err := r.learnEpoch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			keys, args, err := r.planArgs(&p.plan, e)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			// In scripts of at most 10,000 plans, within the client's read
			// timeout; one round trip per 10,000 plans is lost in the time.
			for left := b.N; left > 0; left -= 10_000 {
				n := min(left, 10_000)
				if err := loop.Run(ctx, r.Client(), keys, append(args, n)...).Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
