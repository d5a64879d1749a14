package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// redisServer finds redis-server, or skips tb (fails it when CI=true).
func redisServer(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server not found and CI=true: %v", err)
		}
		tb.Skipf("redis-server not found: %v", err)
	}
	return path
}

// freePort returns a loopback port nothing listens on now, below 55535 so
// that a Cluster node's bus port (port + 10000) is a port too.
func freePort(tb testing.TB) int {
	tb.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port >= 55535 {
			continue
		}
		if bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000)); err == nil {
			bus.Close()
			return port
		}
	}
}

// redisProc is a redis-server (or sentinel) this test started.
type redisProc struct {
	addr string
	cmd  *exec.Cmd
	dir  string
	args []string
	out  *os.File
}

// startRedis starts redis-server on a free port in a temp dir with the
// given config lines, waits until it answers PING and stops it when tb ends.
func startRedis(tb testing.TB, conf ...string) *redisProc {
	tb.Helper()
	bin := redisServer(tb)
	dir := tb.TempDir()
	port := freePort(tb)
	lines := append([]string{
		"bind 127.0.0.1", "port " + strconv.Itoa(port), "dir " + dir,
		`save ""`, "appendonly no", "protected-mode no",
	}, conf...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{path}
	for _, l := range conf {
		if strings.HasPrefix(l, "sentinel ") {
			args = append(args, "--sentinel")
			break
		}
	}
	out, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		tb.Fatal(err)
	}
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, args: append([]string{bin}, args...), out: out}
	tb.Cleanup(func() {
		p.stop()
		out.Close()
	})
	p.start(tb)
	return p
}

// start starts the process, as startRedis configured it, and waits until
// it answers PING.
func (p *redisProc) start(tb testing.TB) {
	tb.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer c.Close()
	waitFor(tb, "redis-server on "+p.addr+" answers", func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, p)
}

func (p *redisProc) stop() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// log returns the server's output, for a failure message.
func (p *redisProc) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "out.log"))
	var tail []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if len(tail) > 20 {
			tail = tail[1:]
		}
	}
	return strings.Join(tail, "\n")
}

// waitFor waits until cond holds: the servers report their state only when
// asked, so it asks again each time it yields, for at most 30s.
func waitFor(tb testing.TB, what string, cond func() bool, procs ...*redisProc) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var logs []string
			for _, p := range procs {
				logs = append(logs, p.addr+":\n"+p.log())
			}
			tb.Fatalf("waiting for %s: gave up after 30s\n%s", what, strings.Join(logs, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts a Redis Cluster of three masters without replicas,
// its slots split between them, and returns its redis-cluster:// URL.
func startCluster(tb testing.TB) string {
	tb.Helper()
	var nodes []*redisProc
	for range 3 {
		nodes = append(nodes, startRedis(tb, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000"))
	}
	ctx := context.Background()
	first := redis.NewClient(&redis.Options{Addr: nodes[0].addr})
	defer first.Close()
	for i, n := range nodes {
		host, port, _ := net.SplitHostPort(n.addr)
		if i > 0 {
			if err := first.ClusterMeet(ctx, host, port).Err(); err != nil {
				tb.Fatal(err)
			}
		}
		c := redis.NewClient(&redis.Options{Addr: n.addr})
		lo, hi := i*16384/3, (i+1)*16384/3-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			tb.Fatal(err)
		}
		c.Close()
	}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr})
		waitFor(tb, "cluster state ok on "+n.addr, func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		}, nodes...)
		c.Close()
	}
	return "redis-cluster://" + nodes[0].addr + "," + nodes[1].addr
}

// sentinelSet is a primary, its replicas and a sentinel watching them.
type sentinelSet struct {
	primary  *redisProc
	replicas []*redisProc
	sentinel *redisProc
	url      string
}

const sentinelMaster = "smsrec"

// startSentinel starts a primary, a replica of it and a sentinel that
// fails over after a second without the primary.
func startSentinel(tb testing.TB) *sentinelSet {
	tb.Helper()
	ctx := context.Background()
	set := &sentinelSet{primary: startRedis(tb)}
	host, port, _ := net.SplitHostPort(set.primary.addr)
	for range 1 {
		r := startRedis(tb, "replicaof "+host+" "+port)
		rc := redis.NewClient(&redis.Options{Addr: r.addr})
		waitFor(tb, "a replica in sync", func() bool {
			info, err := rc.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		}, set.primary, r)
		rc.Close()
		set.replicas = append(set.replicas, r)
	}
	set.sentinel = startRedis(tb,
		"sentinel monitor "+sentinelMaster+" "+host+" "+port+" 1",
		"sentinel down-after-milliseconds "+sentinelMaster+" 1000",
		"sentinel failover-timeout "+sentinelMaster+" 5000")
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.sentinel.addr})
	defer sc.Close()
	waitFor(tb, "the sentinel knows the replicas", func() bool {
		rs, err := sc.Replicas(ctx, sentinelMaster).Result()
		return err == nil && len(rs) == 1
	}, set.primary, set.sentinel)
	set.url = "redis-sentinel://" + set.sentinel.addr + "?master=" + sentinelMaster
	return set
}

func procHarness(url string) storagetest.Harness {
	return storagetest.Harness{
		New: func(tb testing.TB) (storagetest.Store, storagetest.Clock) {
			return newTestRedisAt(tb, url, storagetest.RealClock{}), storagetest.RealClock{}
		},
		Unit: 100 * time.Millisecond,
	}
}

// TestRedisClusterContract runs the contract suite, plans and concurrency
// included, on a Cluster of three masters: every key a script touches is in
// the deployment's slot.
func TestRedisClusterContract(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, procHarness(startCluster(t)))
}

// TestRedisSentinelContract runs the contract suite through a sentinel.
func TestRedisSentinelContract(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, procHarness(startSentinel(t).url))
}

// TestRedisSentinelFailoverUnderLoad starts flows through the sentinel
// while the primary dies: with min_replicas=1, its one replica, every flow
// the store confirmed is there after the failover; while no primary
// answers, and while the promoted replica has no replica of its own to
// confirm a write, every start fails as recovery.ErrUnavailable (503),
// never with another answer; and once the old primary is back, as the new
// one's replica, starts succeed again.
func TestRedisSentinelFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	set := startSentinel(t)
	ctx := context.Background()
	r := newTestRedisAt(t, set.url+"&min_replicas=1", recovery.SystemClock{})
	cfg := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	cfg.StartIP, cfg.StartAccount, cfg.SMSGlobal = high, high, high
	g, err := limiter.New(cfg, nil, r, recovery.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu           sync.Mutex
		acked        []string
		ackedAfter   atomic.Int64 // confirmed once the failover was seen
		unavailable  atomic.Int64
		failedOver   atomic.Bool
		next         atomic.Int64
		stop         = make(chan struct{})
		wg           sync.WaitGroup
		firstAcks    = make(chan struct{})
		firstAcksOne sync.Once
	)
	for w := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				now := time.Now()
				f := recovery.Flow{ID: fmt.Sprintf("failover-%d", next.Add(1)), Account: fmt.Sprintf("user%d@example.com", w),
					CodeHash: []byte("h"), Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				switch err := g.StartFlow(ctx, fmt.Sprintf("192.0.2.%d", w), f); {
				case err == nil:
					mu.Lock()
					acked = append(acked, f.ID)
					n := len(acked)
					mu.Unlock()
					if n >= 50 {
						firstAcksOne.Do(func() { close(firstAcks) })
					}
					if failedOver.Load() {
						ackedAfter.Add(1)
					}
				case errors.Is(err, recovery.ErrUnavailable):
					unavailable.Add(1)
				default:
					t.Errorf("start during the failover: %v, want success or ErrUnavailable", err)
				}
			}
		})
	}
	<-firstAcks
	set.primary.stop()
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.sentinel.addr})
	defer sc.Close()
	// The old primary keeps nothing on disk: restarted while the replica
	// still follows it, it would hand the replica its empty data set. So it
	// comes back only once the sentinel has ended the failover, its master
	// being the promoted server with no failover in progress, and that
	// server says it is a primary, as an operator must wait too. The
	// address alone is not enough: the sentinel gives the promoted one's
	// while it is still reconfiguring.
	waitFor(t, "a replica promoted", func() bool {
		m, err := sc.Master(ctx, sentinelMaster).Result()
		addr := net.JoinHostPort(m["ip"], m["port"])
		if err != nil || addr == set.primary.addr || m["flags"] != "master" {
			return false
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	}, set.sentinel)
	failedOver.Store(true)
	set.primary.start(t) // the sentinel makes it the new primary's replica
	waitFor(t, "starts confirmed after the failover", func() bool { return ackedAfter.Load() >= 20 }, append(set.replicas, set.primary)...)
	close(stop)
	wg.Wait()

	if unavailable.Load() == 0 {
		t.Errorf("no start failed while the primary was gone: the test saw no outage")
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, id := range acked {
		if _, err := r.Flow(ctx, id); err != nil {
			lost++
			if lost <= 5 {
				t.Errorf("flow %s confirmed before the failover: %v", id, err)
			}
		}
	}
	t.Logf("%d starts confirmed (%d after the failover), %d refused as unavailable, %d lost", len(acked), ackedAfter.Load(), unavailable.Load(), lost)
	if lost > 0 {
		for _, p := range append([]*redisProc{set.sentinel, set.primary}, set.replicas...) {
			t.Logf("%s:\n%s", p.addr, p.log())
		}
	}
}
