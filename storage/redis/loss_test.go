package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// lossGuard is a guard on r that locks an account after 5 wrong codes, with
// limits high enough to stay out of the way.
func lossGuard(t *testing.T, r *Store) *limiter.Guard {
	t.Helper()
	return lossGuardAt(t, r, clock.Real{})
}

// lossGuardAt is lossGuard reading the time from clock.
func lossGuardAt(t *testing.T, r *Store, clock recovery.Clock) *limiter.Guard {
	t.Helper()
	cfg := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 40, Window: time.Hour}
	cfg.StartIP, cfg.StartAccount, cfg.StartPhone, cfg.VerifyIP, cfg.SMSGlobal = high, high, high, high, high
	cfg.Lockout = limiter.Threshold{Failures: 5, Window: time.Hour, Duration: 30 * time.Minute}
	cfg.IPBlock = limiter.Threshold{Failures: 1000, Window: time.Hour, Duration: time.Hour}
	g, err := limiter.New(cfg, r, clock)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// lossFlow is a flow for account, alive for an hour.
func lossFlow(id, account string) recovery.Flow {
	now := time.Now()
	return recovery.Flow{ID: id, Account: account, CodeHash: []byte("h"), Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// lockAccount starts a flow for account and guesses wrong until the
// account is locked, and checks that a new start is refused as locked.
func lockAccount(t *testing.T, g *limiter.Guard, account string) {
	t.Helper()
	ctx := context.Background()
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("before-"+account, account)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, guess, err := g.Verify(ctx, "192.0.2.1", "before-"+account, 10)
		if err != nil {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
		if i == 4 && !guess.LockedAccount() {
			t.Fatalf("the fifth wrong code did not lock the account")
		}
	}
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("locked-"+account, account)); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("start on the locked account: %v, want it locked", err)
	}
}

// sameDeployment is another store on the server at url under r's prefix,
// as another instance of the gateway would have.
func sameDeployment(t *testing.T, r *Store, url string) *Store {
	t.Helper()
	other, err := openStore(&Store{URL: url, Prefix: r.Prefix, AllowVolatile: true}, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

// alarmsOf collects the alarms r raises, each on a channel of its kind.
type alarmLog struct {
	lost, acked, unsafe chan storage.Alarm
}

func alarmsOf(t *testing.T, r *Store) *alarmLog {
	t.Helper()
	a := &alarmLog{lost: make(chan storage.Alarm, 100), acked: make(chan storage.Alarm, 100), unsafe: make(chan storage.Alarm, 100)}
	stop := r.Watch(func(al storage.Alarm) {
		switch al.Kind {
		case storage.AlarmStateLost:
			a.lost <- al
		case storage.AlarmLossAcknowledged:
			a.acked <- al
		case storage.AlarmUnsafeServer:
			a.unsafe <- al
		default:
			t.Errorf("alarm of an unknown kind: %+v", al)
		}
	})
	t.Cleanup(func() { _ = stop() })
	return a
}

// count returns how many alarms are waiting on c, taking them.
func count(c chan storage.Alarm) int {
	n := 0
	for {
		select {
		case <-c:
			n++
		default:
			return n
		}
	}
}

// refusedForLoss checks that err is a refusal for a lost state: both
// unavailable (503) and recovery.ErrStateLost.
func refusedForLoss(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded after the server lost its state: the account gets fresh guesses", what)
	}
	if !errors.Is(err, recovery.ErrUnavailable) || !errors.Is(err, recovery.ErrStateLost) {
		t.Fatalf("%s: %v, want it refused as unavailable for a lost state", what, err)
	}
}

// TestRedisRestartWithoutData locks an account, restarts its Redis, which
// keeps nothing on disk, and tries the account again: the lock is gone
// with the server's data, and the store must not take the empty server for
// a clean slate. Neither a start nor a guess on the account may go
// through, on this instance or another one, or one that starts after the
// loss: each is refused as unavailable, with one alarm per instance,
// until an operator acknowledges the loss; then every instance works again.
func TestRedisRestartWithoutData(t *testing.T) {
	t.Parallel()
	p := startRedis(t)
	url := "redis://" + p.addr + "/0"
	r := newTestRedisAt(t, url, clock.Real{})
	other := sameDeployment(t, r, url)
	alarms, otherAlarms := alarmsOf(t, r), alarmsOf(t, other)
	g, otherGuard := lossGuard(t, r), lossGuard(t, other)
	ctx := context.Background()
	lockAccount(t, g, "alice@example.com")
	// The other instance has seen the deployment too.
	if err := storagetest.StartFlow(ctx, otherGuard, "192.0.2.2", lossFlow("other-before", "bob@example.com")); err != nil {
		t.Fatal(err)
	}

	p.stop()
	p.start(t)

	for i := range 5 {
		err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow(fmt.Sprintf("after-%d", i), "alice@example.com"))
		refusedForLoss(t, fmt.Sprintf("start %d on the locked account after the restart", i+1), err)
	}
	_, _, err := g.Verify(ctx, "192.0.2.1", "before-alice@example.com", 10)
	refusedForLoss(t, "a guess after the restart", err)
	if n := count(alarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms on the instance that noticed, want 1", n)
	}
	if l, lost := r.StateLoss(); !lost || l.Detail == "" {
		t.Errorf("StateLoss() = %+v, %v; want the loss", l, lost)
	}
	err = storagetest.StartFlow(ctx, otherGuard, "192.0.2.2", lossFlow("other-after", "bob@example.com"))
	refusedForLoss(t, "a start on another instance", err)
	if n := count(otherAlarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms on the other instance, want 1", n)
	}
	_, err = other.BeginSpend(ctx, []byte("token"), time.Second)
	refusedForLoss(t, "a token spent after the loss", err)
	// An instance that starts now finds the loss where the server keeps it.
	late := sameDeployment(t, r, url)
	lateAlarms := alarmsOf(t, late)
	err = storagetest.StartFlow(ctx, lossGuard(t, late), "192.0.2.3", lossFlow("late", "carol@example.com"))
	refusedForLoss(t, "a start on an instance started after the loss", err)
	if n := count(lateAlarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms on the late instance, want 1", n)
	}

	// The operator acknowledges it through one instance; the others adopt
	// it at their next request.
	if ok, err := r.AcknowledgeLoss(ctx); err != nil || !ok {
		t.Fatalf("AcknowledgeLoss = %v, %v; want it acknowledged", ok, err)
	}
	// A reset spends no token on a server that lost its state, and does
	// once the loss is acknowledged, though no plan ran in between.
	if _, err := late.BeginSpend(ctx, []byte("token"), time.Second); !errors.Is(err, recovery.ErrNotFound) {
		t.Errorf("BeginSpend on an instance that saw the loss, after the acknowledgement: %v, want the token unknown", err)
	}
	if ok, err := other.AcknowledgeLoss(ctx); err != nil || ok {
		t.Fatalf("second AcknowledgeLoss = %v, %v; want nothing left to acknowledge", ok, err)
	}
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("acked", "alice@example.com")); err != nil {
		t.Fatalf("start after the acknowledgement: %v", err)
	}
	if err := storagetest.StartFlow(ctx, otherGuard, "192.0.2.2", lossFlow("other-acked", "bob@example.com")); err != nil {
		t.Fatalf("start on the other instance after the acknowledgement: %v", err)
	}
	if _, lost := other.StateLoss(); lost {
		t.Error("the other instance still reports the loss after the acknowledgement")
	}
	if count(alarms.acked) != 0 || count(otherAlarms.acked) != 1 || count(lateAlarms.acked) != 1 {
		t.Error("want one acknowledged alarm on each instance that adopted the acknowledgement, none on the one that made it")
	}
	// The new epoch is watched like the first.
	p.stop()
	p.start(t)
	err = storagetest.StartFlow(ctx, otherGuard, "192.0.2.2", lossFlow("other-again", "bob@example.com"))
	refusedForLoss(t, "a start after a second restart", err)
}

// TestRedisFlushAll: a FLUSHALL is a loss like a restart.
func TestRedisFlushAll(t *testing.T) {
	t.Parallel()
	p := startRedis(t)
	r := newTestRedisAt(t, "redis://"+p.addr+"/0", clock.Real{})
	alarms := alarmsOf(t, r)
	g := lossGuard(t, r)
	ctx := context.Background()
	lockAccount(t, g, "alice@example.com")
	if err := r.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err := g.Verify(ctx, "192.0.2.1", "before-alice@example.com", 10)
	refusedForLoss(t, "a guess after FLUSHALL", err)
	err = storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("after", "alice@example.com"))
	refusedForLoss(t, "a start after FLUSHALL", err)
	if n := count(alarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms, want 1", n)
	}
}

// TestRedisRestoreOlderSnapshot restarts a server from a snapshot taken
// before the account was locked: the epoch's id is the same, but its count
// went back, and the store calls that a loss too.
func TestRedisRestoreOlderSnapshot(t *testing.T) {
	t.Parallel()
	p := startRedis(t)
	r := newTestRedisAt(t, "redis://"+p.addr+"/0", clock.Real{})
	alarms := alarmsOf(t, r)
	g := lossGuard(t, r)
	ctx := context.Background()
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("first", "bob@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().Save(ctx).Err(); err != nil { // dump.rdb, loaded at the restart
		t.Fatal(err)
	}
	lockAccount(t, g, "alice@example.com")
	p.stop()
	p.start(t)
	err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("after", "alice@example.com"))
	refusedForLoss(t, "a start after a restore of an older snapshot", err)
	if n := count(alarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms, want 1", n)
	}
}

// TestRedisPolicyChangedThenReconnect turns on eviction on a server the
// store uses and drops its connections: the store's next connection finds
// the policy, refuses the server (unavailable, 503) with one alarm
// naming it, and takes the server back once the policy is noeviction again.
func TestRedisPolicyChangedThenReconnect(t *testing.T) {
	t.Parallel()
	p := startRedis(t)
	r := newTestRedisAt(t, "redis://"+p.addr+"/0", clock.Real{})
	alarms := alarmsOf(t, r)
	g := lossGuard(t, r)
	ctx := context.Background()
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("first", "bob@example.com")); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: p.addr})
	defer admin.Close()
	setPolicy := func(policy string) {
		t.Helper()
		if err := admin.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
			t.Fatal(err)
		}
	}
	setPolicy("allkeys-lru")
	for i := range 3 {
		err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow(fmt.Sprintf("evicting-%d", i), "bob@example.com"))
		u, ok := errors.AsType[*UnsafeServerError](err)
		if !errors.Is(err, recovery.ErrUnavailable) || !ok || u.Option != optAllowEviction {
			t.Fatalf("start %d once the server evicts: %v, want it refused as unavailable naming %s", i+1, err, optAllowEviction)
		}
	}
	select {
	case al := <-alarms.unsafe:
		if !strings.Contains(al.Detail, "allkeys-lru") {
			t.Errorf("alarm %q does not name the policy", al.Detail)
		}
	default:
		t.Fatal("no alarm for a server that turned to evicting")
	}
	if n := count(alarms.unsafe); n != 0 {
		t.Errorf("%d more alarms for the same refusal, want one in all", n)
	}
	setPolicy("noeviction")
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("again", "bob@example.com")); err != nil {
		t.Fatalf("start once the policy is noeviction again: %v", err)
	}
	if n := count(alarms.lost); n != 0 {
		t.Errorf("%d state-lost alarms for a policy change, want none", n)
	}
}

// TestRedisCheckReachesSentinelAndCluster: through a sentinel the master is
// checked, not the sentinel, and in a Cluster the nodes: servers that keep
// nothing on disk are refused, and taken with allow_volatile.
func TestRedisCheckReachesSentinelAndCluster(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]string{"sentinel": startSentinel(t).url, "cluster": startCluster(t)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			for _, allow := range []bool{false, true} {
				r, err := openStore(&Store{URL: url, Prefix: "smsrec-check:", AllowVolatile: allow}, clock.Real{})
				if err != nil {
					t.Fatal(err)
				}
				err = r.Epoch(ctx)
				r.Close()
				u, refused := errors.AsType[*UnsafeServerError](err)
				switch {
				case !allow && (!refused || u.Option != optAllowVolatile):
					t.Errorf("a deployment that keeps nothing on disk: %v, want it refused naming %s", err, optAllowVolatile)
				case allow && err != nil:
					t.Errorf("with allow_volatile: %v", err)
				}
			}
		})
	}
}

// TestRedisStateLossHold: with a hold, a loss is acknowledged by the store
// itself once the hold has passed since it noticed the loss, and not before.
func TestRedisStateLossHold(t *testing.T) {
	t.Parallel()
	p := startRedis(t)
	clk := clock.NewManual(time.Now())
	r, err := openStore(&Store{URL: "redis://" + p.addr + "/0", Prefix: "smsrec-hold:", AllowVolatile: true, StateLossHold: caddy.Duration(time.Hour)}, clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	alarms := alarmsOf(t, r)
	g := lossGuardAt(t, r, clk)
	ctx := context.Background()
	start := func(id string) error {
		now := clk.Now()
		return storagetest.StartFlow(ctx, g, "192.0.2.1", recovery.Flow{ID: id, Account: "bob@example.com", CodeHash: []byte("h"),
			Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if err := start("before"); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	refusedForLoss(t, "a start after FLUSHALL", start("lost"))
	clk.Advance(59 * time.Minute)
	refusedForLoss(t, "a start within the hold", start("held"))
	if n := count(alarms.acked); n != 0 {
		t.Fatalf("%d acknowledgements within the hold", n)
	}
	clk.Advance(2 * time.Minute)
	if err := start("after"); err != nil {
		t.Fatalf("start once the hold has passed: %v", err)
	}
	select {
	case al := <-alarms.acked:
		if !strings.Contains(al.Detail, "state_loss_hold") {
			t.Errorf("acknowledgement %q does not say it came from the hold", al.Detail)
		}
	default:
		t.Error("no alarm for the acknowledgement the hold made")
	}
	if _, lost := r.StateLoss(); lost {
		t.Error("the store still reports the loss")
	}
}

// TestRedisSentinelStaleServerIsNoLoss: a connection that still reaches a
// server the sentinels no longer name as master (an old primary back
// without its data, standalone until they make it a replica) finds no
// epoch there, but the deployment lost nothing: the master they name holds
// it. The plan that server answered is refused as unavailable (503), not
// as a loss, with no alarm; the connections to it are dropped, so the next
// request reaches the master and its state (a lock) is there. An instance
// that starts on the stale server does not learn its epoch from it. Made a
// replica, the stale server copies the master's epoch and keeps nothing of
// what the refused plan wrote there. A loss on the master the sentinels
// name is still a loss.
func TestRedisSentinelStaleServerIsNoLoss(t *testing.T) {
	t.Parallel()
	master, stale := startRedis(t, "repl-diskless-sync-delay 0"), startRedis(t)
	host, port, _ := net.SplitHostPort(master.addr)
	sentinel := startRedis(t, "sentinel monitor "+sentinelMaster+" "+host+" "+port+" 1")
	ctx := context.Background()
	admin := func(p *redisProc) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: p.addr})
		t.Cleanup(func() { c.Close() })
		return c
	}
	masterAdmin, staleAdmin, sentinelAdmin := admin(master), admin(stale), admin(sentinel)
	// name makes the sentinel name p as the master, as one that has not
	// learnt of a failover yet does.
	name := func(p *redisProc) {
		t.Helper()
		host, port, _ := net.SplitHostPort(p.addr)
		if err := sentinelAdmin.Do(ctx, "sentinel", "remove", sentinelMaster).Err(); err != nil {
			t.Fatal(err)
		}
		if err := sentinelAdmin.Do(ctx, "sentinel", "monitor", sentinelMaster, host, port, 1).Err(); err != nil {
			t.Fatal(err)
		}
	}
	runID := func(c redis.Cmdable) string {
		t.Helper()
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, id, _ := strings.Cut(info, "run_id:")
		return strings.TrimSpace(strings.SplitN(id, "\n", 2)[0])
	}

	url := "redis-sentinel://" + sentinel.addr + "?master=" + sentinelMaster
	r := newTestRedisAt(t, url, clock.Real{})
	alarms := alarmsOf(t, r)
	g := lossGuard(t, r)
	lockAccount(t, g, "alice@example.com")

	// The store's connections end up on the empty server: the sentinel
	// names it while the master drops them, and names the master again.
	name(stale)
	if err := masterAdmin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	name(master)
	if got, want := runID(r.Client()), runID(staleAdmin); got != want {
		t.Fatalf("the store reaches run_id %s, want the stale server's %s", got, want)
	}

	err := storagetest.StartFlow(ctx, g, "192.0.2.2", lossFlow("stale", "bob@example.com"))
	if !errors.Is(err, recovery.ErrUnavailable) || errors.Is(err, recovery.ErrStateLost) {
		t.Fatalf("start answered by the stale server: %v, want it unavailable and no loss", err)
	}
	if l, lost := r.StateLoss(); lost {
		t.Fatalf("StateLoss() = %+v: a stale server was taken for a loss", l)
	}
	if n := count(alarms.lost); n != 0 {
		t.Fatalf("%d state-lost alarms for a stale server, want none", n)
	}
	if got, want := runID(r.Client()), runID(masterAdmin); got != want {
		t.Fatalf("after the refusal the store reaches run_id %s, want the master's %s", got, want)
	}
	if err := storagetest.StartFlow(ctx, g, "192.0.2.2", lossFlow("after", "bob@example.com")); err != nil {
		t.Fatalf("start once the stale connections are dropped: %v", err)
	}
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("locked", "alice@example.com")); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("start on the locked account: %v, want it still locked", err)
	}

	// An instance that starts now, its first connection on the stale
	// server, takes neither the mark the refused plan left there nor an
	// epoch it would make there for the deployment's.
	name(stale)
	late := sameDeployment(t, r, url)
	lateAlarms := alarmsOf(t, late)
	if err := late.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	name(master)
	if err := late.Epoch(ctx); !errors.Is(err, recovery.ErrUnavailable) || errors.Is(err, recovery.ErrStateLost) {
		t.Fatalf("epoch read on the stale server: %v, want it unavailable and no loss", err)
	}
	if _, lost := late.StateLoss(); lost || count(lateAlarms.lost) != 0 {
		t.Fatal("an instance that started on the stale server took it for a loss")
	}
	if err := late.Epoch(ctx); err != nil {
		t.Fatalf("epoch read once the stale connections are closed: %v", err)
	}
	if err := storagetest.StartFlow(ctx, lossGuard(t, late), "192.0.2.3", lossFlow("late", "carol@example.com")); err != nil {
		t.Fatalf("start on the instance that started on the stale server: %v", err)
	}

	// What the refused plan wrote on the stale server goes when it
	// becomes the master's replica.
	if n, _ := staleAdmin.Exists(ctx, r.epochKey()).Result(); n != 1 {
		t.Fatalf("the refused plan left no epoch on the stale server; the test did not reach it")
	}
	since := stale.mark()
	if err := staleAdmin.Do(ctx, "replicaof", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	stale.await(t, since, "MASTER <-> REPLICA sync: Finished with success")
	want, err := masterAdmin.HGetAll(ctx, r.epochKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	got, err := staleAdmin.HGetAll(ctx, r.epochKey()).Result()
	if err != nil || !maps.Equal(got, want) || got["lost"] != "" {
		t.Fatalf("epoch on the stale server made a replica: %v (%v), want the master's %v", got, err, want)
	}

	// A loss on the master the sentinel names is declared.
	if err := masterAdmin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	err = storagetest.StartFlow(ctx, g, "192.0.2.2", lossFlow("flushed", "bob@example.com"))
	refusedForLoss(t, "a start after the master lost its state", err)
	if n := count(alarms.lost); n != 1 {
		t.Errorf("%d state-lost alarms for a loss on the master, want 1", n)
	}
}
