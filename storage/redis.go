package storage

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Defaults for RedisConfig. The timeouts are short because a recovery
// request waits on Redis: when it is gone the routes should fail closed
// quickly rather than hold connections open.
const (
	defaultDialTimeout  = 2 * time.Second
	defaultReadTimeout  = time.Second
	defaultWriteTimeout = time.Second
	defaultPoolSize     = 32
	// One retry covers a pooled connection that died with a failover,
	// and one dial per try (go-redis would make five) keeps a call to a
	// server that is down within two dial timeouts. A script retried after
	// a lost reply fails safe: it counts an attempt twice, finds its own
	// hold busy or a flow already consumed.
	defaultMaxRetries    = 1
	defaultDialerRetries = 1
)

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// URL is the server, in one of these forms:
	//
	//	redis://[[user]:password@]host:port[/db][?option=value&...]
	//	rediss://[[user]:password@]host:port[/db][?option=value&...]
	//	redis-sentinel://[[user]:password@]host1:port,host2:port[/db]?master=<name>[&sentinel_password=<password>][&min_replicas=<n>]
	//	redis-cluster://[[user]:password@]host1:port,host2:port
	//
	// redis:// is one server and rediss:// the same over TLS; both take
	// go-redis's query options (dial_timeout, pool_size, ...). The Sentinel
	// form lists the sentinels, which find the master called master; the
	// password is the master's, and sentinels are asked without one unless
	// sentinel_password is given. The Cluster form lists some of the
	// cluster's nodes, from which the client learns the rest. All forms are
	// parsed by go-redis (ParseURL, ParseFailoverURL, ParseClusterURL) and
	// take its query options. Passwords must be percent-encoded.
	URL string
	// Prefix starts every key, so that several deployments can share a
	// database. It must not contain braces: keys use Redis Cluster hash tags.
	Prefix string
	// DialTimeout bounds opening a connection. Default: 2s, or the URL's
	// dial_timeout.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for a reply. Default: 1s, or the URL's
	// read_timeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending a command. Default: 1s, or the URL's
	// write_timeout.
	WriteTimeout time.Duration
	// PoolSize is the most connections kept to each server. Default: 32, or
	// the URL's pool_size.
	PoolSize int
	// MinReplicas, when above 0, makes every write wait (WAIT, in the same
	// round trip) until that many replicas hold it, for at most half the
	// read timeout; a write they do not confirm in time fails as
	// recovery.ErrUnavailable, though it may have been made. Replication
	// is asynchronous, so without it a write the primary confirmed can be
	// lost when the primary dies before its replicas have it. Set to the
	// number of replicas, a flow, token or lock the service confirmed is
	// on whichever replica a sentinel promotes; with fewer, only on that
	// many, which a sentinel may not pick. The price: while fewer replicas
	// answer (after a failover, until the old primary is back as a
	// replica), writes fail closed. Not for a Cluster. Default: 0, or the
	// Sentinel URL's min_replicas.
	MinReplicas int
	// AllowVolatile accepts a server that keeps nothing on disk (no AOF, no
	// RDB save point), or one that does not say: see redissafety.go. The
	// cost: a restart of it forgets every lock and count. Default: false,
	// such a server is refused.
	AllowVolatile bool
	// AllowEviction accepts a server whose maxmemory-policy is not
	// noeviction. The cost: a full server drops locks, counters and flows.
	// Default: false, such a server is refused.
	AllowEviction bool
	// LossHold, when above 0, acknowledges a loss of state by itself once
	// this long has passed since the store noticed it, instead of waiting
	// for an operator (redisepoch.go). Default: 0, wait for an operator.
	LossHold time.Duration
}

// Redis is a recovery.Store, a limiter.LockStore and a ulule limiter.Store
// on a Redis server, shared by every instance that uses the same server and
// prefix.
//
// Every change is one command or one Lua script, so it is atomic on the
// server whichever instance sends it, and every key it writes has a time to
// live. Times it compares come from the injected clock and are kept to the
// millisecond; times to live are set relative to that clock.
//
// Errors that mean Redis cannot answer (refused or timed-out connections, a
// server loading, read-only or out of memory) satisfy
// errors.Is(err, recovery.ErrUnavailable).
//
// RunPlan makes the whole of a request (lock checks, counters, the change to
// a flow or token, strikes) one Lua script, so one round trip; go-redis
// sends it as EVALSHA and loads it on NOSCRIPT.
//
// Keys, under the prefix P and the hash tag {P recovery}:
//
//	P{Precovery}:flow:<id>            hash: data (JSON), attempts, sends, code_hash, sent_at, expires_at, account
//	P{Precovery}:token:<hex hash>     hash: data (JSON), expires_at, held_until
//	P{Precovery}:lock:<kind>:<key>    hash: the limiter.Record of a key (times in ms); an
//	                                  account's run has no time to live, a client's
//	                                  lives as long as its window and block
//	P{Precovery}:locks:<kind>         sorted set of the kind's locked records, scored
//	                                  by Until (+inf: permanent)
//	P{Precovery}:count:<scope>:<key>  a rate counter, whose ulimiter.Store key is <scope>:<key>;
//	                                  its window is its time to live (rediscount.go)
//	P{Precovery}:epoch                hash: id, seq, lost, acked; no time to live (redisepoch.go)
//
// One request touches the client's keys, the account's, the flow's and the
// global SMS budget at once, and the script that does it must find them all
// in one Redis Cluster slot: so every key of a deployment carries the same
// hash tag. The price is that a deployment's keys live on one node of a
// Cluster and are not spread over the others: a Cluster gives it failover,
// not more throughput or memory than one node has. Deployments under
// different prefixes fall in different slots. Tags per account cannot
// work: a client's block and counters, and the budget, span accounts.
type Redis struct {
	client redis.UniversalClient
	// minReplicas and waitFor are the WAIT of every write (RedisConfig.MinReplicas).
	minReplicas int
	waitFor     time.Duration
	prefix      string
	base        string // the prefix and the deployment's hash tag: every key starts so
	clock       recovery.Clock
	batches     batcher

	// guard checks each connection's server (redissafety.go); epoch and
	// lost keep the deployment's epoch (redisepoch.go).
	guard    *serverGuard
	lossHold time.Duration
	alarms   alarms
	epoch    atomic.Pointer[epochState]
	lost     atomic.Pointer[Loss]
}

// NewRedis returns a Redis store for cfg, reading the time from clock. It
// does not connect: use Ping to check the server. Each connection it opens
// first checks that the server keeps its data (redissafety.go), and fails
// with an *UnsafeServerError when it would not.
func NewRedis(cfg RedisConfig, clock recovery.Clock) (*Redis, error) {
	if clock == nil {
		return nil, errors.New("creating redis storage: no clock")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, errors.New("creating redis storage: prefix must not contain braces")
	}
	opts, err := universalOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating redis storage: %w", err)
	}
	minReplicas := cfg.MinReplicas
	if minReplicas == 0 && opts.MasterName != "" {
		minReplicas, _ = strconv.Atoi(urlQuery(cfg.URL).Get("min_replicas")) // checked by sentinelOptions
	}
	if minReplicas > 0 && opts.IsClusterMode {
		return nil, errors.New("creating redis storage: min replicas is not for a cluster")
	}
	r := &Redis{
		minReplicas: minReplicas,
		waitFor:     opts.ReadTimeout / 2,
		prefix:      cfg.Prefix,
		base:        keyBase(cfg.Prefix),
		clock:       clock,
		lossHold:    cfg.LossHold,
	}
	r.guard = &serverGuard{allowVolatile: cfg.AllowVolatile, allowEviction: cfg.AllowEviction, alarm: r.raise}
	opts.OnConnect = r.guard.onConnect
	r.client = redis.NewUniversalClient(opts)
	r.batches.send = r.sendBatch
	return r, nil
}

// keyBase is how every key of a deployment starts: its prefix and then its
// hash tag, which holds the prefix too, so that deployments sharing a
// Cluster under different prefixes fall in different slots.
func keyBase(prefix string) string {
	return prefix + "{" + prefix + "recovery}:"
}

// Client returns the underlying client, for other users of the same server
// such as the rate limiter's store.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Ping checks that the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	return redisError("ping", r.client.Ping(ctx).Err())
}

// Close closes the client and its connections, for every user of Client.
func (r *Redis) Close() error {
	return r.client.Close()
}

func (r *Redis) flowKey(id string) string { return r.base + "flow:" + id }

func (r *Redis) tokenKey(hash []byte) string { return r.base + "token:" + hex.EncodeToString(hash) }

func (r *Redis) lockKey(kind, key string) string { return r.base + "lock:" + kind + ":" + key }

func (r *Redis) lockIndex(kind string) string { return r.base + "locks:" + kind }

// flowFields are the fields of a flow hash in the order decodeFlow reads
// them; the scripts below list them in the same order.
var flowFields = []string{"data", "attempts", "sends", "code_hash", "sent_at", "expires_at"}

// Flow returns the flow with that ID, or recovery.ErrNotFound.
func (r *Redis) Flow(ctx context.Context, id string) (recovery.Flow, error) {
	vals, err := r.client.HMGet(ctx, r.flowKey(id), flowFields...).Result()
	if err != nil {
		return recovery.Flow{}, redisError("get flow", err)
	}
	f, err := decodeFlow(vals)
	if err != nil {
		return recovery.Flow{}, err
	}
	if !r.clock.Now().Before(f.ExpiresAt) {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	return f, nil
}

// decodeFlow builds a flow from the values of flowFields; a missing data
// field means a missing flow.
func decodeFlow(vals []any) (recovery.Flow, error) {
	if len(vals) != len(flowFields) || vals[0] == nil {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	s := make([]string, len(vals))
	for i, v := range vals {
		var ok bool
		if s[i], ok = v.(string); !ok {
			return recovery.Flow{}, fmt.Errorf("decoding flow: field %s is missing", flowFields[i])
		}
	}
	var f recovery.Flow
	if err := json.Unmarshal([]byte(s[0]), &f); err != nil {
		return recovery.Flow{}, fmt.Errorf("decoding flow: %w", err)
	}
	attempts, err1 := strconv.Atoi(s[1])
	sends, err2 := strconv.Atoi(s[2])
	sentAt, err3 := strconv.ParseInt(s[4], 10, 64)
	expiresAt, err4 := strconv.ParseInt(s[5], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return recovery.Flow{}, fmt.Errorf("decoding flow: %w", err)
	}
	f.Attempts = attempts
	f.Sends = sends
	f.CodeHash = []byte(s[3])
	f.SentAt = time.UnixMilli(sentAt).UTC()
	f.ExpiresAt = time.UnixMilli(expiresAt).UTC()
	return f, nil
}

// beginSpendScript returns the token's data after holding it, 0 while an
// earlier hold lasts, or nil for a missing or expired token.
// KEYS[1] token; ARGV[1] now (ms), ARGV[2] end of the hold (ms).
var beginSpendScript = redis.NewScript(`
local t = redis.call('HMGET', KEYS[1], 'data', 'expires_at', 'held_until')
if not t[1] then return false end
local now = tonumber(ARGV[1])
if tonumber(t[2]) <= now then
	redis.call('DEL', KEYS[1])
	return false
end
if tonumber(t[3]) > now then return 0 end
redis.call('HSET', KEYS[1], 'held_until', ARGV[2])
return t[1]
`)

// BeginSpend holds the token until now+lease and returns it:
// recovery.ErrNotFound if it is unknown, expired or spent,
// recovery.ErrBusy while an earlier hold lasts.
//
// While this store knows of a loss of state that no one acknowledged, it
// refuses (recovery.ErrStateLost): a server gone back in time may hold a
// token that was spent.
func (r *Redis) BeginSpend(ctx context.Context, hash []byte, lease time.Duration) (recovery.Token, error) {
	if lost, err := r.stillLost(ctx); err != nil {
		return recovery.Token{}, err
	} else if lost {
		return recovery.Token{}, fmt.Errorf("redis begin spend: %w: %w", recovery.ErrUnavailable, recovery.ErrStateLost)
	}
	now := r.clock.Now()
	v, err := r.run(ctx, beginSpendScript, []string{r.tokenKey(hash)},
		now.UnixMilli(), now.Add(lease).UnixMilli()).Result()
	if err != nil {
		return recovery.Token{}, redisError("begin spend", err)
	}
	data, ok := v.(string)
	if !ok {
		return recovery.Token{}, recovery.ErrBusy
	}
	var t recovery.Token
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return recovery.Token{}, fmt.Errorf("decoding token: %w", err)
	}
	return t, nil
}

// releaseScript lifts the hold on a token if the token still exists; an
// HSET alone would recreate a deleted token without a time to live.
// KEYS[1] token.
var releaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
	redis.call('HSET', KEYS[1], 'held_until', 0)
end
return 0
`)

// deleteScript deletes KEYS[1]: a script, so that it waits for replicas
// like every write.
var deleteScript = redis.NewScript(`redis.call('DEL', KEYS[1]) return 0`)

// EndSpend deletes the token when spent, and otherwise lifts the hold so
// that it can be taken again. A token that is gone already is no error.
func (r *Redis) EndSpend(ctx context.Context, hash []byte, spent bool) error {
	key := r.tokenKey(hash)
	if spent {
		return redisError("end spend", r.run(ctx, deleteScript, []string{key}).Err())
	}
	return redisError("end spend", r.run(ctx, releaseScript, []string{key}).Err())
}

// lockFields are the fields of a lock record hash, in the order
// decodeRecord reads them and the scripts return them.
var lockFields = []string{"kind", "key", "since", "until", "perm", "strikes", "locks", "inwin", "winend"}

// endRunScript deletes a record and its index entry and returns 1 if its
// lock was in force. KEYS[1] record, KEYS[2] index; ARGV[1] now (ms).
var endRunScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'until', 'perm')
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('DEL', KEYS[1])
if r[2] == '1' or (r[1] and tonumber(r[1]) > tonumber(ARGV[1])) then return 1 end
return 0
`)

// EndRun deletes the record of kind and key and reports whether a lock was
// in force.
func (r *Redis) EndRun(ctx context.Context, kind, key string) (bool, error) {
	n, err := r.run(ctx, endRunScript, []string{r.lockKey(kind, key), r.lockIndex(kind)},
		r.clock.Now().UnixMilli()).Int()
	if err != nil {
		return false, redisError("end run", err)
	}
	return n == 1, nil
}

// ListLocks returns the locks of a kind in force now, ordered by Until
// (permanent locks last) and then Key.
func (r *Redis) ListLocks(ctx context.Context, kind string) ([]limiter.Lock, error) {
	now := r.clock.Now()
	keys, err := r.client.ZRangeByScore(ctx, r.lockIndex(kind), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return nil, redisError("list locks", err)
	}
	// The index is read apart from the records, so one may end or go in
	// between: those come back empty and are left out.
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HMGet(ctx, k, recordFields...)
		}
		return nil
	})
	if err != nil {
		return nil, redisError("list locks", err)
	}
	var out []limiter.Lock
	for _, c := range cmds {
		vals := c.(*redis.SliceCmd).Val()
		if len(vals) == 0 || vals[0] == nil {
			continue
		}
		rec, err := decodeImposed(vals)
		if err != nil {
			return nil, err
		}
		if rec.InForce(now) {
			out = append(out, rec.Lock)
		}
	}
	limiter.SortLocks(out)
	return out, nil
}

// decodeRecord builds a record from the values of lockFields.
func decodeRecord(vals []any) (limiter.Record, error) {
	if len(vals) != len(lockFields) {
		return limiter.Record{}, errors.New("decoding lock: malformed reply from redis")
	}
	var n [7]int64
	for i, v := range vals[2:] {
		var err error
		switch v := v.(type) {
		case int64:
			n[i] = v
		case string:
			n[i], err = strconv.ParseInt(v, 10, 64)
		default:
			err = fmt.Errorf("field %s is missing", lockFields[i+2])
		}
		if err != nil {
			return limiter.Record{}, fmt.Errorf("decoding lock: %w", err)
		}
	}
	kind, _ := vals[0].(string)
	key, _ := vals[1].(string)
	ms := func(v int64) time.Time {
		if v == 0 {
			return time.Time{}
		}
		return time.UnixMilli(v).UTC()
	}
	return limiter.Record{
		Lock: limiter.Lock{
			Kind: kind, Key: key,
			Since: ms(n[0]), Until: ms(n[1]), Permanent: n[2] == 1,
			Strikes: n[3], Locks: n[4],
		},
		InWindow:  n[5],
		WindowEnd: ms(n[6]),
	}, nil
}

// run runs script as EVALSHA, and as EVAL when the server does not hold
// it. With MinReplicas, WAIT follows on the same connection in the same
// round trip, and a write the replicas do not confirm in time is an error.
//
// Scripts of concurrent requests share round trips (see batcher): a batch
// is one pipeline, and with MinReplicas one WAIT at its end covers every
// write in it.
func (r *Redis) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return r.batches.run(ctx, script, keys, args)
}

// errNotReplicated is a write that too few replicas confirmed.
var errNotReplicated = errors.New("too few replicas confirmed the write")

// sendBatch runs the scripts of batch in one pipeline, as EVALSHA, and those
// the server does not hold again as EVAL, in a second one.
func (r *Redis) sendBatch(ctx context.Context, batch []*scriptCall) {
	if len(batch) == 1 && r.minReplicas == 0 {
		c := batch[0]
		c.cmd = c.script.Run(ctx, r.client, c.keys, c.args...)
		return
	}
	calls, plans, joined := joinPlans(ctx, batch)
	r.pipeline(ctx, calls, (*redis.Script).EvalSha)
	var missing []*scriptCall
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		r.pipeline(ctx, missing, (*redis.Script).Eval)
	}
	if joined != nil {
		splitPlans(ctx, joined, plans)
	}
}

// joinPlans makes the plans of batch, when there are several, one call of
// plansScript, and returns the calls to send, the plans joined (in order)
// and the joined call, or nil.
func joinPlans(ctx context.Context, batch []*scriptCall) (calls, plans []*scriptCall, joined *scriptCall) {
	for _, c := range batch {
		if c.script == planScript {
			plans = append(plans, c)
		}
	}
	if len(plans) < 2 {
		return batch, nil, nil
	}
	joined = &scriptCall{ctx: ctx, script: plansScript, args: []any{len(plans)}}
	calls = make([]*scriptCall, 0, len(batch)-len(plans)+1)
	for _, c := range batch {
		if c.script != planScript {
			calls = append(calls, c)
			continue
		}
		if joined.keys == nil {
			calls = append(calls, joined) // where the first plan was
		}
		joined.keys = append(joined.keys, c.keys...)
		joined.args = append(append(joined.args, len(c.args)), c.args...)
	}
	return calls, plans, joined
}

// splitPlans gives each plan its own result from the joined call's reply,
// or the joined call's error.
func splitPlans(ctx context.Context, joined *scriptCall, plans []*scriptCall) {
	results, err := joined.cmd.Slice()
	if err == nil && len(results) != len(plans) {
		err = fmt.Errorf("redis plans: %d results for %d plans", len(results), len(plans))
	}
	for i, c := range plans {
		c.cmd = redis.NewCmd(ctx)
		if err != nil {
			c.cmd.SetErr(err)
			continue
		}
		c.cmd.SetVal(results[i])
	}
}

// pipeline sends the scripts of calls by way of send, followed with
// MinReplicas by one WAIT, whose answer each script's reply then carries.
func (r *Redis) pipeline(ctx context.Context, calls []*scriptCall, send func(*redis.Script, context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
	p := r.client.Pipeline()
	for _, c := range calls {
		c.cmd = send(c.script, ctx, p, c.keys, c.args...)
	}
	var wait *redis.IntCmd
	if r.minReplicas > 0 {
		wait = redis.NewIntCmd(ctx, "wait", r.minReplicas, r.waitFor.Milliseconds())
		_ = p.Process(ctx, wait)
	}
	_, _ = p.Exec(ctx) // the errors are the commands'
	if wait == nil {
		return
	}
	for _, c := range calls {
		switch {
		case c.cmd.Err() != nil:
		case wait.Err() != nil:
			c.cmd.SetErr(wait.Err())
		case wait.Val() < int64(r.minReplicas):
			c.cmd.SetErr(errNotReplicated)
		}
	}
}

// redisError maps redis.Nil to recovery.ErrNotFound and marks the errors
// of a server that cannot answer with recovery.ErrUnavailable.
func redisError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return recovery.ErrNotFound
	case unavailable(err):
		return fmt.Errorf("redis %s: %w: %w", op, recovery.ErrUnavailable, err)
	default:
		return fmt.Errorf("redis %s: %w", op, err)
	}
}

// unavailable tells the errors worth a retry later from those of a bad
// command or configuration. Anything that is not a reply from the server
// (refused or timed-out connection, exhausted pool, closed client) is
// unavailability, and so are the replies of a server that is starting,
// failing over, full or busy.
func unavailable(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsNoReplicasError(err) || redis.IsOOMError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}

// universalOptions turns cfg into client options, with the defaults filled.
func universalOptions(cfg RedisConfig) (*redis.UniversalOptions, error) {
	scheme, _, ok := strings.Cut(cfg.URL, "://")
	if !ok {
		return nil, errors.New("redis url has no scheme")
	}
	var (
		o   *redis.UniversalOptions
		err error
	)
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		o, err = singleOptions(cfg.URL)
	case "redis-sentinel":
		o, err = sentinelOptions(cfg.URL)
	case "redis-cluster":
		o, err = clusterOptions(cfg.URL)
	default:
		return nil, fmt.Errorf("unsupported redis url scheme %q", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s url: %w", scheme, err)
	}
	o.DialTimeout = cmp.Or(cfg.DialTimeout, o.DialTimeout, defaultDialTimeout)
	o.ReadTimeout = cmp.Or(cfg.ReadTimeout, o.ReadTimeout, defaultReadTimeout)
	o.WriteTimeout = cmp.Or(cfg.WriteTimeout, o.WriteTimeout, defaultWriteTimeout)
	o.PoolSize = cmp.Or(cfg.PoolSize, o.PoolSize, defaultPoolSize)
	o.MaxRetries = cmp.Or(o.MaxRetries, defaultMaxRetries)
	o.DialerRetries = cmp.Or(o.DialerRetries, defaultDialerRetries)
	// A request's own deadline also bounds its Redis calls.
	o.ContextTimeoutEnabled = true
	return o, nil
}

// singleOptions parses a redis:// or rediss:// URL.
func singleOptions(raw string) (*redis.UniversalOptions, error) {
	s, err := redis.ParseURL(raw)
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:           []string{s.Addr},
		ClientName:      s.ClientName,
		DB:              s.DB,
		Protocol:        s.Protocol,
		Username:        s.Username,
		Password:        s.Password,
		TLSConfig:       s.TLSConfig,
		MaxRetries:      s.MaxRetries,
		MinRetryBackoff: s.MinRetryBackoff,
		MaxRetryBackoff: s.MaxRetryBackoff,
		DialTimeout:     s.DialTimeout,
		ReadTimeout:     s.ReadTimeout,
		WriteTimeout:    s.WriteTimeout,
		PoolFIFO:        s.PoolFIFO,
		PoolSize:        s.PoolSize,
		PoolTimeout:     s.PoolTimeout,
		MinIdleConns:    s.MinIdleConns,
		MaxIdleConns:    s.MaxIdleConns,
		MaxActiveConns:  s.MaxActiveConns,
		ConnMaxIdleTime: s.ConnMaxIdleTime,
		ConnMaxLifetime: s.ConnMaxLifetime,

		ConnMaxLifetimeJitter:   s.ConnMaxLifetimeJitter,
		MaxConcurrentDials:      s.MaxConcurrentDials,
		PipelinePoolSize:        s.PipelinePoolSize,
		PipelineReadBufferSize:  s.PipelineReadBufferSize,
		PipelineWriteBufferSize: s.PipelineWriteBufferSize,
	}, nil
}

// sentinelOptions parses a redis-sentinel:// URL with go-redis's
// ParseFailoverURL. Our form lists every sentinel in the host and gives the
// master's password in the userinfo, as redis:// does; go-redis's lists the
// others in addr= and gives the sentinels' credentials in the userinfo, so
// the URL is rewritten into that form first. Every other query option is
// go-redis's own (dial_timeout, pool_size, ...).
func sentinelOptions(raw string) (*redis.UniversalOptions, error) {
	u, addrs, err := splitHosts(raw)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	master := q.Get("master")
	if v := q.Get("min_replicas"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return nil, fmt.Errorf("invalid min_replicas %q", v)
		}
	}
	q.Del("min_replicas") // ours: read by NewRedis
	if master == "" {
		return nil, errors.New("no master: add ?master=<name>")
	}
	for _, name := range []string{"master_name", "username", "password", "addr"} {
		if q.Has(name) {
			return nil, fmt.Errorf("unknown option %q", name) // they are set by the URL's other parts
		}
	}
	theirs := url.URL{Scheme: "redis", Host: addrs[0], Path: u.Path}
	if q.Has("sentinel_password") {
		theirs.User = url.UserPassword("", q.Get("sentinel_password"))
	}
	q.Del("master")
	q.Del("sentinel_password")
	q.Set("master_name", master)
	if name := u.User.Username(); name != "" {
		q.Set("username", name)
	}
	if pw, ok := u.User.Password(); ok {
		q.Set("password", pw)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	theirs.RawQuery = q.Encode()
	f, err := redis.ParseFailoverURL(theirs.String())
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:            f.SentinelAddrs,
		MasterName:       f.MasterName,
		SentinelUsername: f.SentinelUsername,
		SentinelPassword: f.SentinelPassword,
		ClientName:       f.ClientName,
		DB:               f.DB,
		Protocol:         f.Protocol,
		Username:         f.Username,
		Password:         f.Password,
		TLSConfig:        f.TLSConfig,
		MaxRetries:       f.MaxRetries,
		MinRetryBackoff:  f.MinRetryBackoff,
		MaxRetryBackoff:  f.MaxRetryBackoff,
		DialTimeout:      f.DialTimeout,
		ReadTimeout:      f.ReadTimeout,
		WriteTimeout:     f.WriteTimeout,
		PoolFIFO:         f.PoolFIFO,
		PoolSize:         f.PoolSize,
		PoolTimeout:      f.PoolTimeout,
		MinIdleConns:     f.MinIdleConns,
		MaxIdleConns:     f.MaxIdleConns,
		MaxActiveConns:   f.MaxActiveConns,
		ConnMaxIdleTime:  f.ConnMaxIdleTime,
		ConnMaxLifetime:  f.ConnMaxLifetime,
		RouteByLatency:   f.RouteByLatency,
		RouteRandomly:    f.RouteRandomly,
	}, nil
}

// clusterOptions parses a redis-cluster:// URL with go-redis's
// ParseClusterURL, after moving every node but the first into addr=.
// Query options are go-redis's own.
func clusterOptions(raw string) (*redis.UniversalOptions, error) {
	u, addrs, err := splitHosts(raw)
	if err != nil {
		return nil, err
	}
	if strings.Trim(u.Path, "/") != "" {
		return nil, errors.New("a cluster has no database number")
	}
	q := u.Query()
	if q.Has("addr") {
		return nil, errors.New(`unknown option "addr"`) // the nodes are the URL's hosts
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	theirs := url.URL{Scheme: "redis", User: u.User, Host: addrs[0], RawQuery: q.Encode()}
	c, err := redis.ParseClusterURL(theirs.String())
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:           c.Addrs,
		IsClusterMode:   true,
		ClientName:      c.ClientName,
		Protocol:        c.Protocol,
		Username:        c.Username,
		Password:        c.Password,
		TLSConfig:       c.TLSConfig,
		MaxRedirects:    c.MaxRedirects,
		ReadOnly:        c.ReadOnly,
		RouteByLatency:  c.RouteByLatency,
		RouteRandomly:   c.RouteRandomly,
		MaxRetries:      c.MaxRetries,
		MinRetryBackoff: c.MinRetryBackoff,
		MaxRetryBackoff: c.MaxRetryBackoff,
		DialTimeout:     c.DialTimeout,
		ReadTimeout:     c.ReadTimeout,
		WriteTimeout:    c.WriteTimeout,
		PoolFIFO:        c.PoolFIFO,
		PoolSize:        c.PoolSize,
		PoolTimeout:     c.PoolTimeout,
		MinIdleConns:    c.MinIdleConns,
		MaxIdleConns:    c.MaxIdleConns,
		MaxActiveConns:  c.MaxActiveConns,
		ConnMaxIdleTime: c.ConnMaxIdleTime,
		ConnMaxLifetime: c.ConnMaxLifetime,
	}, nil
}

// urlQuery returns the query of a URL that splitHosts parses.
func urlQuery(raw string) url.Values {
	u, _, err := splitHosts(raw)
	if err != nil {
		return nil
	}
	return u.Query()
}

// splitHosts takes the comma-separated host:port list out of raw, which
// net/url cannot parse when it holds IPv6 literals, and parses the rest.
func splitHosts(raw string) (*url.URL, []string, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(scheme + "://" + userinfo + "hosts" + tail)
	if err != nil {
		return nil, nil, withoutURL(err)
	}
	var addrs []string
	for i, addr := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			// The address is left out of the message: in a URL gone
			// wrong it may hold part of a password.
			return nil, nil, fmt.Errorf("address %d is not host:port", i+1)
		}
		addrs = append(addrs, addr)
	}
	return u, addrs, nil
}

// withoutURL drops the URL that net/url puts in its errors, since it may
// hold a password.
func withoutURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// Interface guards
var (
	_ recovery.Store    = (*Redis)(nil)
	_ limiter.PlanStore = (*Redis)(nil)
)
