package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// redisServer finds redis-server, or skips tb (fails it when CI=true).
func redisServer(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(tb, "redis-server, which this test starts itself", "apt-get install redis-server", err)
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

// redisProc is a redis-server (or sentinel) this test started. Its output
// is read as it comes, kept for waits on what it reports and written to
// out.log in its directory.
type redisProc struct {
	addr string
	cmd  *exec.Cmd
	dir  string
	args []string
	out  *os.File

	mu    sync.Mutex
	lines []string     // every line the process has written, restarts included
	grew  *wake.Signal // broadcast at each line
}

// startRedis starts redis-server on a free port in a temp dir with the
// given config lines, waits until it is ready and stops it when tb ends.
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
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, args: append([]string{bin}, args...), out: out, grew: wake.New()}
	tb.Cleanup(func() {
		p.stop()
		out.Close()
	})
	p.start(tb)
	return p
}

// start starts the process, as startRedis configured it, and waits until it
// reports that it takes connections: a server when it says it is ready, a
// sentinel when it has begun to monitor its master.
func (p *redisProc) start(tb testing.TB) {
	tb.Helper()
	ready := "Ready to accept connections"
	if slices.Contains(p.args, "--sentinel") {
		ready = "+monitor master"
	}
	since := p.mark()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	err = p.cmd.Start()
	w.Close() // the child holds its own end
	if err != nil {
		r.Close()
		tb.Fatal(err)
	}
	go p.read(r)
	p.await(tb, since, ready)
}

// read keeps each line the process writes until it exits.
func (p *redisProc) read(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.out, line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		p.grew.Broadcast()
	}
}

// mark returns how many lines the process has written so far, for await.
func (p *redisProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// await waits until a line written after the first since contains what:
// the servers say in their logs when they are ready, in sync, or failed
// over. It fails tb, with the process's last lines, after 60s without one.
func (p *redisProc) await(tb testing.TB, since int, what string) {
	tb.Helper()
	seen := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines[min(since, len(p.lines)):] {
			if strings.Contains(l, what) {
				return true
			}
		}
		return false
	}
	if !p.grew.Await(60*time.Second, seen) {
		tb.Fatalf("%s did not report %q within 60s:\n%s", p.addr, what, p.log())
	}
}

func (p *redisProc) stop() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// log returns the last lines of the process's output, for a failure
// message.
func (p *redisProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-20):], "\n")
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
	// A node says so when it sees every slot served, by the three of them.
	for _, n := range nodes {
		n.await(tb, 0, "Cluster state changed: ok")
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
	// A replica is sent its master's data set at once, not after Redis's
	// default five seconds of waiting for other replicas to join.
	set := &sentinelSet{primary: startRedis(tb, "repl-diskless-sync-delay 0")}
	host, port, _ := net.SplitHostPort(set.primary.addr)
	for range 1 {
		r := startRedis(tb, "replicaof "+host+" "+port, "repl-diskless-sync-delay 0")
		r.await(tb, 0, "MASTER <-> REPLICA sync: Finished with success")
		set.replicas = append(set.replicas, r)
	}
	set.sentinel = startRedis(tb,
		"sentinel monitor "+sentinelMaster+" "+host+" "+port+" 1",
		"sentinel down-after-milliseconds "+sentinelMaster+" 1000",
		"sentinel failover-timeout "+sentinelMaster+" 5000")
	for _, r := range set.replicas {
		set.sentinel.await(tb, 0, "+slave slave "+r.addr)
	}
	set.url = "redis-sentinel://" + set.sentinel.addr + "?master=" + sentinelMaster
	return set
}

func procHarness(url string) storagetest.Harness {
	return storagetest.Harness{
		New: func(tb testing.TB) (storagetest.Store, storagetest.Clock) {
			return newTestRedisAt(tb, url, serverTime{}), serverTime{}
		},
		// Real time, as in redisHarness.
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
	// The servers are the test's own, so no keys are swept at the end,
	// through a client that may still refuse to dial then (see below).
	r, err := openStore(&Store{URL: set.url + "&min_replicas=1", Prefix: redistest.NewPrefix(), AllowVolatile: true}, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cfg := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	cfg.StartIP, cfg.StartAccount, cfg.SMSGlobal = high, high, high
	g, err := limiter.New(cfg, r, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu           sync.Mutex
		acked        []string
		ackedAfter   atomic.Int64 // confirmed once the failover was seen
		ackedNow     = wake.New() // broadcast at each of those
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
				switch err := storagetest.StartFlow(ctx, g, fmt.Sprintf("192.0.2.%d", w), f); {
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
						ackedNow.Broadcast()
					}
				case errors.Is(err, recovery.ErrUnavailable):
					unavailable.Add(1)
				default:
					t.Errorf("start during the failover: %v, want success or ErrUnavailable", err)
				}
			}
		})
	}
	// A wait below that gives up ends the test: the workers stop first.
	stopWorkers := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	t.Cleanup(stopWorkers)
	select {
	case <-firstAcks:
	case <-time.After(60 * time.Second):
		t.Fatalf("fewer than 50 starts confirmed within 60s, before any failover\n%s", set.primary.log())
	}
	switched := set.sentinel.mark()
	set.primary.stop()
	// The old primary keeps nothing on disk: restarted while the replica
	// still follows it, it would hand the replica its empty data set. So it
	// comes back only once the sentinel has ended the failover, as an
	// operator must wait too: +switch-master, when its master is the
	// promoted server. The address alone is not enough: the sentinel gives
	// the promoted one's while it is still reconfiguring. And it comes back
	// as the promoted server's replica: back as a master, it would stay one
	// until the sentinel converts it (some ten seconds), and a second
	// failover in that time (the promoted server late to answer the
	// sentinel on a loaded machine) could pick it, a replica as the
	// sentinel sees it, and hand its empty data set to every server.
	set.sentinel.await(t, switched, "+switch-master "+sentinelMaster+" ")
	failedOver.Store(true)
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: set.sentinel.addr})
	defer sentinel.Close()
	promoted, err := sentinel.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil {
		t.Fatal(err)
	}
	set.primary.args = append(set.primary.args, "--replicaof", promoted[0], promoted[1])
	set.primary.start(t)
	if !ackedNow.Await(60*time.Second, func() bool { return ackedAfter.Load() >= 20 }) {
		t.Fatalf("%d starts confirmed within 60s of the failover, want 20\n%s\n%s", ackedAfter.Load(), set.sentinel.log(), set.primary.log())
	}
	stopWorkers()

	if unavailable.Load() == 0 {
		t.Errorf("no start failed while the primary was gone: the test saw no outage")
	}
	// Another instance reads them: for a second after the outage this
	// one's client may still refuse to dial (once every dial failed,
	// go-redis probes once a second before it dials again), which loses
	// no flow.
	other := sameDeployment(t, r, set.url)
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, id := range acked {
		if _, err := other.Flow(ctx, id); err != nil {
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
