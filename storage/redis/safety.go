package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// What a Redis server must do for the store, and what it costs to waive it.
//
// Locks, the run of wrong codes behind them (NIST's 100 in a row) and the
// rate counters live only in Redis. A server that keeps nothing on disk
// forgets them all when it restarts, and one with an evicting
// maxmemory-policy drops them when it fills up: either hands an attacker
// fresh guesses. So every connection the store opens, to whichever server
// it reaches (the one of a redis:// URL, the master a sentinel names, each
// node of a Cluster), first reads how the server keeps data, and a server
// that would forget is refused unless the operator waived that check:
//
//   - persistence: appendonly yes (AOF), or at least one RDB save point. A
//     server with neither is refused unless AllowVolatile. RDB alone
//     loses what came after the last snapshot; AOF with appendfsync
//     everysec loses at most a second.
//   - eviction: maxmemory-policy noeviction. Any other policy is refused
//     unless AllowEviction: the allkeys-* ones evict locks, and the
//     volatile-* ones, which evict only keys with a time to live, still
//     evict IP blocks, rate counters (a fresh SMS budget) and pending flows
//     (a person's code that no longer works). maxmemory 0 does not excuse
//     the policy: a later CONFIG SET maxmemory turns eviction on with no
//     reconnect to notice it.
//
// The settings are read with CONFIG GET; a managed server that refuses
// CONFIG (renamed, or an ACL without it) is read through INFO, which gives
// aof_enabled and maxmemory_policy but not the RDB save points: with AOF
// off such a server cannot be shown to persist and is refused unless
// AllowVolatile. A sentinel holds no data and is not checked.

// Options that waive the checks, as the Caddyfile and JSON name them.
const (
	optAllowVolatile = "allow_volatile"
	optAllowEviction = "allow_eviction"
)

// UnsafeServerError is a Redis server refused because it would forget
// state: Reason says what it lacks, Option names the setting that accepts
// it anyway.
type UnsafeServerError struct {
	Reason string
	Option string
}

func (e *UnsafeServerError) Error() string {
	return fmt.Sprintf("%s; fix the server, or set %s to accept this", e.Reason, e.Option)
}

// serverFacts is what a server says of how it keeps data. Empty strings
// are settings it would not tell.
type serverFacts struct {
	sentinel  bool
	appendon  string // CONFIG appendonly, or "yes"/"no" from INFO aof_enabled
	save      string // CONFIG save
	saveKnown bool
	policy    string // maxmemory-policy
}

// inspectServer reads c's persistence and eviction settings in one round
// trip. An error is a connection that failed; settings the server refuses
// to give are left empty.
func inspectServer(ctx context.Context, c redis.Cmdable) (serverFacts, error) {
	var appendonly, save, policy *redis.MapStringStringCmd
	var info *redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		appendonly = p.ConfigGet(ctx, "appendonly")
		save = p.ConfigGet(ctx, "save")
		policy = p.ConfigGet(ctx, "maxmemory-policy")
		info = p.Info(ctx)
		return nil
	})
	// Replies of the server (an unknown or forbidden command) are answers;
	// anything else is a connection that failed, and so is NOAUTH: a
	// connection without the password the server wants, which says
	// nothing of the server.
	for _, cmd := range []redis.Cmder{appendonly, save, policy, info} {
		if e := cmd.Err(); e != nil && (!isReply(e) || redis.HasErrorPrefix(e, "NOAUTH")) {
			return serverFacts{}, e
		}
	}
	if err != nil && !isReply(err) {
		return serverFacts{}, err
	}
	var f serverFacts
	fields := map[string]string{}
	if info.Err() == nil {
		for line := range strings.Lines(info.Val()) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				fields[k] = v
			}
		}
	}
	f.sentinel = fields["redis_mode"] == "sentinel"
	if v, ok := appendonly.Val()["appendonly"]; ok && appendonly.Err() == nil {
		f.appendon = v
	} else if v, ok := fields["aof_enabled"]; ok {
		f.appendon = map[string]string{"1": "yes", "0": "no"}[v]
	}
	if v, ok := save.Val()["save"]; ok && save.Err() == nil {
		f.save, f.saveKnown = strings.TrimSpace(v), true
	}
	if v, ok := policy.Val()["maxmemory-policy"]; ok && policy.Err() == nil {
		f.policy = v
	} else {
		f.policy = fields["maxmemory_policy"]
	}
	return f, nil
}

func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}

// judge returns the first thing about f that the store refuses, given the
// checks waived, and the things it would refuse that were waived (for a
// warning at load).
func judge(f serverFacts, allowVolatile, allowEviction bool) (refused *UnsafeServerError, waived []string) {
	if f.sentinel {
		return nil, nil
	}
	var risks []*UnsafeServerError
	switch {
	case f.appendon == "yes":
	case f.saveKnown && f.save != "":
	case f.saveKnown && f.appendon == "no":
		risks = append(risks, &UnsafeServerError{Option: optAllowVolatile,
			Reason: `redis keeps nothing on disk (appendonly no, save ""): a restart forgets every account lock, ` +
				`run of wrong codes and rate limit; turn on AOF (appendonly yes, appendfsync everysec) or RDB save points`})
	default:
		risks = append(risks, &UnsafeServerError{Option: optAllowVolatile,
			Reason: "cannot tell whether redis keeps its data on disk (CONFIG GET is refused and INFO shows AOF off " +
				"or nothing): a restart may forget every account lock, run of wrong codes and rate limit; turn on AOF, " +
				"or allow CONFIG GET so that RDB save points can be seen"})
	}
	switch f.policy {
	case "noeviction":
	case "":
		risks = append(risks, &UnsafeServerError{Option: optAllowEviction,
			Reason: "cannot read redis maxmemory-policy (neither CONFIG GET nor INFO gives it); it must be noeviction, " +
				"or a full server drops locks, counters and flows"})
	default:
		risks = append(risks, &UnsafeServerError{Option: optAllowEviction,
			Reason: fmt.Sprintf("redis maxmemory-policy is %s: a full server drops locks, counters and pending flows; "+
				"set maxmemory-policy noeviction", f.policy)})
	}
	for _, r := range risks {
		allowed := (r.Option == optAllowVolatile && allowVolatile) || (r.Option == optAllowEviction && allowEviction)
		switch {
		case allowed:
			waived = append(waived, r.Reason)
		case refused == nil:
			refused = r
		}
	}
	return refused, waived
}

// serverGuard checks each new connection of a store (go-redis's OnConnect)
// and remembers what it last found, so that a server that turns unsafe
// (a maxmemory-policy changed, a failover to a replica that keeps nothing
// on disk) is reported once when it does, not at every connection.
type serverGuard struct {
	allowVolatile, allowEviction bool
	alarm                        func(storage.Alarm)

	mu      sync.Mutex
	refused string   // the reason of the last refusal, "" when the last check passed
	waived  []string // what the last check found and the settings waived
}

// onConnect is the OnConnect hook: it refuses a connection to a server that
// would forget, which the request that wanted it answers as unavailable
// (503), and reports the first refusal after a passing check.
func (g *serverGuard) onConnect(ctx context.Context, cn *redis.Conn) error {
	f, err := inspectServer(ctx, cn)
	if err != nil {
		return err
	}
	refused, waived := judge(f, g.allowVolatile, g.allowEviction)
	g.mu.Lock()
	g.waived = waived
	was := g.refused
	if refused != nil {
		g.refused = refused.Error()
	} else {
		g.refused = ""
	}
	g.mu.Unlock()
	if refused == nil {
		return nil
	}
	if was != refused.Error() && g.alarm != nil {
		g.alarm(storage.Alarm{Kind: storage.AlarmUnsafeServer, Detail: refused.Error()})
	}
	return refused
}

// risks returns what the last check found that the settings waived.
func (g *serverGuard) risks() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waived
}
