package storage

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	cmd := exec.Command(bin, args...)
	out, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, dir: dir}
	tb.Cleanup(func() {
		p.stop()
		out.Close()
	})
	c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer c.Close()
	waitFor(tb, "redis-server on "+p.addr+" answers", func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, p)
	return p
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

// sentinelSet is a primary, its replica and a sentinel watching them.
type sentinelSet struct {
	primary, replica, sentinel *redisProc
	url                        string
}

const sentinelMaster = "smsrec"

// startSentinel starts a primary, a replica of it and a sentinel that
// fails over after a second without the primary.
func startSentinel(tb testing.TB) *sentinelSet {
	tb.Helper()
	primary := startRedis(tb)
	host, port, _ := net.SplitHostPort(primary.addr)
	replica := startRedis(tb, "replicaof "+host+" "+port)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: replica.addr})
	defer rc.Close()
	waitFor(tb, "the replica in sync", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, primary, replica)
	sentinel := startRedis(tb,
		"sentinel monitor "+sentinelMaster+" "+host+" "+port+" 1",
		"sentinel down-after-milliseconds "+sentinelMaster+" 1000",
		"sentinel failover-timeout "+sentinelMaster+" 5000")
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.addr})
	defer sc.Close()
	waitFor(tb, "the sentinel knows the replica", func() bool {
		rs, err := sc.Replicas(ctx, sentinelMaster).Result()
		return err == nil && len(rs) == 1
	}, primary, replica, sentinel)
	return &sentinelSet{primary: primary, replica: replica, sentinel: sentinel,
		url: "redis-sentinel://" + sentinel.addr + "?master=" + sentinelMaster}
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
