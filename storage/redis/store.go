package redisstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Defaults for the client. The timeouts are short because a recovery
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

// keyBase is how every key of a deployment starts: its prefix and then its
// hash tag, which holds the prefix too, so that deployments sharing a
// Cluster under different prefixes fall in different slots.
func keyBase(prefix string) string {
	return prefix + "{" + prefix + "recovery}:"
}

// Client returns the underlying client, for other users of the same server
// such as the rate limiter's store.
func (r *Store) Client() redis.UniversalClient { return r.client }

// Ping checks that the server answers.
func (r *Store) Ping(ctx context.Context) error {
	return redisError("ping", r.client.Ping(ctx).Err())
}

// Close closes the client and its connections, for every user of Client.
func (r *Store) Close() error {
	return r.client.Close()
}

func (r *Store) flowKey(id string) string { return r.base + "flow:" + id }

func (r *Store) tokenKey(hash []byte) string { return r.base + "token:" + hex.EncodeToString(hash) }

func (r *Store) lockKey(kind, key string) string { return r.base + "lock:" + kind + ":" + key }

func (r *Store) lockIndex(kind string) string { return r.base + "locks:" + kind }

// counterKey is the key of the counter of scope and key, which ulule's
// methods (count.go) name scope:key.
func (r *Store) counterKey(scope, key string) string { return r.base + "count:" + scope + ":" + key }

// flowFields are the fields of a flow hash in the order decodeFlow reads
// them; the scripts below list them in the same order.
var flowFields = []string{"data", "attempts", "sends", "code_hash", "sent_at", "expires_at"}

// Flow returns the flow with that ID, or recovery.ErrNotFound.
func (r *Store) Flow(ctx context.Context, id string) (recovery.Flow, error) {
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

// BeginSpend holds the token until now+lease and returns it:
// recovery.ErrNotFound if it is unknown, expired or spent,
// recovery.ErrBusy while an earlier hold lasts.
//
// While this store knows of a loss of state that no one acknowledged, it
// refuses (recovery.ErrStateLost): a server gone back in time may hold a
// token that was spent.
func (r *Store) BeginSpend(ctx context.Context, hash []byte, lease time.Duration) (recovery.Token, error) {
	if lost, err := r.stillLost(ctx); err != nil {
		return recovery.Token{}, err
	} else if lost {
		return recovery.Token{}, fmt.Errorf("redis begin spend: %w: %w", recovery.ErrUnavailable, recovery.ErrStateLost)
	}
	now := r.clock.Now()
	v, err := r.run(ctx, tokensScript, []string{r.tokenKey(hash)},
		"hold", now.UnixMilli(), now.Add(lease).UnixMilli()).Result()
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

// EndSpend deletes the token when spent, and otherwise lifts the hold so
// that it can be taken again. A token that is gone already is no error.
func (r *Store) EndSpend(ctx context.Context, hash []byte, spent bool) error {
	key := r.tokenKey(hash)
	op := "release"
	if spent {
		op = "spend"
	}
	return redisError("end spend", r.run(ctx, tokensScript, []string{key}, op).Err())
}

// lockFields are the fields of a lock record hash, in the order
// decodeRecord reads them and the scripts return them.
var lockFields = []string{"kind", "key", "since", "until", "perm", "strikes", "locks", "inwin", "winend"}

// EndRun deletes the record of kind and key and reports whether a lock was
// in force.
func (r *Store) EndRun(ctx context.Context, kind, key string) (bool, error) {
	n, err := r.run(ctx, imposeScript, []string{r.lockKey(kind, key), r.lockIndex(kind)},
		"lift", r.clock.Now().UnixMilli()).Int()
	if err != nil {
		return false, redisError("end run", err)
	}
	return n == 1, nil
}

// ListLocks returns the locks of a kind in force now, ordered by Until
// (permanent locks last) and then Key.
func (r *Store) ListLocks(ctx context.Context, kind string) ([]recovery.Lock, error) {
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
	var out []recovery.Lock
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
func decodeRecord(vals []any) (recovery.Record, error) {
	if len(vals) != len(lockFields) {
		return recovery.Record{}, errors.New("decoding lock: malformed reply from redis")
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
			return recovery.Record{}, fmt.Errorf("decoding lock: %w", err)
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
	return recovery.Record{
		Lock: recovery.Lock{
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
func (r *Store) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return r.batches.run(ctx, script, keys, args)
}

// errNotReplicated is a write that too few replicas confirmed.
var errNotReplicated = errors.New("too few replicas confirmed the write")

// sendBatch runs the scripts of batch in one pipeline, as EVALSHA, and those
// the server does not hold again as EVAL, in a second one.
func (r *Store) sendBatch(ctx context.Context, batch []*scriptCall) {
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
// plansScript (lua/plans.lua), and returns the calls to send, the plans joined (in order)
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
		joined.args = append(append(joined.args, len(c.args), len(c.keys)), c.args...)
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
func (r *Store) pipeline(ctx context.Context, calls []*scriptCall, send func(*redis.Script, context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
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
// of a server that cannot answer with recovery.ErrUnavailable, and those
// of one that refuses the settings as a configuration error, which is
// unavailability too (misconfig.go).
func redisError(op string, err error) error {
	if m := misconfigured(err); m != nil {
		return fmt.Errorf("redis %s: configuration error: %w", op, m)
	}
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

// Interface guards
var (
	_ recovery.Store = (*Store)(nil)
	_ recovery.Store = (*Store)(nil)
)
