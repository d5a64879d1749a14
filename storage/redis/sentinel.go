package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// A stale server on a Sentinel deployment.
//
// A connection can outlive its server's time as master. A client that
// dialled the old master just before the sentinels named the promoted
// replica, or that asked a sentinel which has not learnt of the failover
// yet, reaches the old master when it comes back; back without its data,
// it is a standalone master until the sentinels make it a replica (some
// ten seconds). A plan it answers finds no epoch there and is refused for
// a loss (epoch.go), though the master the sentinels name lost nothing.
//
// So on a Sentinel deployment a plan refused for a loss is checked before
// the store declares the loss. Every sentinel the URL lists is asked which
// server is the master (SENTINEL GET-MASTER-ADDR-BY-NAME), and the server
// more than half of them name is read directly. When its epoch holds the
// id this store knows, with no loss marked and a seq no lower than the
// floor, the server that answered the plan was not that master: the
// refusal marks the epoch lost in the same script, so the master would
// show the mark. (So which server answered need not be known, which
// go-redis, sharing a pool of connections, would not tell.) The
// deployment's state is intact; the request is refused
// as unavailable (503, to be retried), no loss is noticed, and the store's
// connections to every other server are closed, so that the next request
// dials the master the sentinels name. In every other case (the master
// lost the epoch too, the sentinels do not agree or do not answer, the
// master cannot be read) the loss is declared as on any other deployment:
// only a master shown intact clears a refusal. A store that starts checks
// the same way an epoch it made (the key was missing) or found lost: when
// the master holds another epoch, not lost, the server was a stale one,
// and the store learns nothing from it.
//
// A majority rather than the first sentinel that answers, because the
// first may be the one that is behind: a sentinel that missed the failover
// still names the old master, the very server a stale connection reaches.
// A failover is authorised by a majority of the sentinels, so the master a
// majority names is the one they agreed on. Sentinels the URL does not
// list are not asked.
//
// What the refused plan wrote on the stale server (the mark, a seq counted
// on an empty hash) cannot pass for a loss later: once the sentinels make
// that server a replica, the master resynchronises it in full (its data
// set is not the master's), which drops its own data.

// sentinelCheck is what a store on a Sentinel deployment needs to tell a
// stale server from a loss.
type sentinelCheck struct {
	opts   redis.UniversalOptions // the store's: master name, sentinels, credentials, timeouts
	conns  connTracker
	flight singleflight.Group
}

func newSentinelCheck(o *redis.UniversalOptions) *sentinelCheck {
	c := &sentinelCheck{opts: *o}
	c.opts.OnConnect = nil // the store's connections are checked; these only read
	return c
}

// masterEpoch is the epoch as the master the sentinels name holds it.
type masterEpoch struct {
	at   []netip.AddrPort // the master's addresses
	id   string
	seq  int64
	lost bool
}

// staleAnswer reports whether a server that answered was a stale one (see
// above): whether elsewhere, given the epoch on the master the sentinels
// name, says the answer came from another server. It then closes the
// store's connections to every server but the master. Concurrent calls
// share one look at the master.
func (r *Store) staleAnswer(ctx context.Context, elsewhere func(masterEpoch) bool) bool {
	s := r.sentinel
	if s == nil {
		return false
	}
	v, err, _ := s.flight.Do("", func() (any, error) {
		// Not the request's cancellation: the look is shared. Two steps,
		// the sentinels and then the master, each a dial and a reply.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*(s.opts.DialTimeout+s.opts.ReadTimeout))
		defer cancel()
		return s.master(ctx, r.epochKey())
	})
	if err != nil || !elsewhere(v.(masterEpoch)) {
		return false
	}
	s.conns.keepOnly(v.(masterEpoch).at)
	return true
}

// errStale is the refusal of a request that a stale server answered.
func errStale(op string) error {
	return fmt.Errorf("redis %s: %w: a server the sentinels do not name as master answered; the connections to it are closed", op, recovery.ErrUnavailable)
}

// master asks the sentinels which server is the master and reads the epoch
// at key there.
func (s *sentinelCheck) master(ctx context.Context, key string) (masterEpoch, error) {
	addr, err := s.named(ctx)
	if err != nil {
		return masterEpoch{}, err
	}
	host, port, _ := net.SplitHostPort(addr)
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return masterEpoch{}, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return masterEpoch{}, err
	}
	c := redis.NewClient(s.options(addr, false))
	defer c.Close()
	vals, err := c.HMGet(ctx, key, "id", "seq", "lost").Result()
	if err != nil {
		return masterEpoch{}, err
	}
	m := masterEpoch{lost: vals[2] != nil}
	m.id, _ = vals[0].(string)
	m.seq, _ = strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64)
	for _, ip := range ips {
		m.at = append(m.at, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return m, nil
}

// named returns the master's address (host:port) as more than half of the
// sentinels the URL lists name it.
func (s *sentinelCheck) named(ctx context.Context) (string, error) {
	names := make([]string, len(s.opts.Addrs))
	var wg sync.WaitGroup
	for i, addr := range s.opts.Addrs {
		wg.Go(func() {
			c := redis.NewSentinelClient(s.options(addr, true))
			defer c.Close()
			if hp, err := c.GetMasterAddrByName(ctx, s.opts.MasterName).Result(); err == nil && len(hp) == 2 {
				names[i] = net.JoinHostPort(hp[0], hp[1])
			}
		})
	}
	wg.Wait()
	if addr, ok := majority(names); ok {
		return addr, nil
	}
	return "", errors.New("no master named by a majority of the sentinels")
}

// majority returns the name more than half of names hold ("" is no name).
func majority(names []string) (string, bool) {
	votes := map[string]int{}
	for _, n := range names {
		if n == "" {
			continue
		}
		if votes[n]++; 2*votes[n] > len(names) {
			return n, true
		}
	}
	return "", false
}

// options are the store's client options for one server at addr: a
// sentinel, with the sentinels' credentials, or the master.
func (s *sentinelCheck) options(addr string, sentinel bool) *redis.Options {
	o := s.opts
	o.Addrs, o.MasterName = []string{addr}, ""
	if sentinel {
		o.Username, o.Password, o.DB = o.SentinelUsername, o.SentinelPassword, 0
	}
	opts := o.Simple()
	opts.PoolSize = 1
	return opts
}

// connTracker is a go-redis hook that keeps the connections its client
// opens, so that those to a stale server can be closed: go-redis closes a
// master's connections only when its own dialer learns of a new master.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (t *connTracker) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, t: t}
		t.mu.Lock()
		if t.conns == nil {
			t.conns = map[*trackedConn]struct{}{}
		}
		t.conns[tc] = struct{}{}
		t.mu.Unlock()
		if _, ok := c.(syscall.Conn); ok {
			return rawConn{tc}, nil
		}
		return tc, nil
	}
}

func (*connTracker) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (*connTracker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// keepOnly closes every connection that is not to one of at. A connection
// in use fails its command, which go-redis retries on a new one.
func (t *connTracker) keepOnly(at []netip.AddrPort) {
	var drop []*trackedConn
	t.mu.Lock()
	for c := range t.conns {
		a, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok || !slices.Contains(at, netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())) {
			drop = append(drop, c)
		}
	}
	t.mu.Unlock()
	for _, c := range drop {
		_ = c.Close()
	}
}

// trackedConn is a connection its tracker keeps until it is closed.
type trackedConn struct {
	net.Conn
	t *connTracker
}

func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// rawConn is a trackedConn over a socket: go-redis checks an idle
// connection's health through SyscallConn.
type rawConn struct{ *trackedConn }

func (c rawConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}
