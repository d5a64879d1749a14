package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

func init() {
	caddy.RegisterModule(new(Store))
}

// DefaultPrefix starts every key when no prefix is given.
const DefaultPrefix = "smsrec:"

// Store is the store http.handlers.sms_recovery.storage.redis: state on a
// Redis server, Sentinel or Cluster, shared by every Caddy instance that
// uses the same server and prefix. JSON: {"backend": "redis", "url":
// "redis://127.0.0.1:6379/0"}. The gateway requires its secrets to be set
// with it, so that every instance hashes alike.
//
// It is a recovery.Store, a recovery.Store and a ulule limiter.Store
// once opened (store.go): the gateway keeps the opened Store across config
// reloads, so its settings are its JSON fields and its state is made by
// Open, not Provision.
type Store struct {
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
	// Placeholders such as {env.REDIS_URL} are expanded; a password in it
	// is never logged. Required.
	//
	// min_replicas, when above 0, makes every write wait (WAIT, in the same
	// round trip) until that many replicas hold it, for at most half the
	// read timeout; a write they do not confirm in time fails as
	// unavailable (503), though it may have been made. Replication is
	// asynchronous, so without it a write the primary confirmed can be lost
	// when the primary dies before its replicas have it. Set to the number
	// of replicas, a flow, token or lock the service confirmed is on
	// whichever replica a sentinel promotes; with fewer, only on that many,
	// which a sentinel may not pick. The price: while fewer replicas answer
	// (after a failover, until the old primary is back as a replica),
	// writes fail closed. Default: 0.
	URL string `json:"url,omitempty"`

	// Prefix starts every key, so that several deployments can share a
	// database. It must not contain braces: keys use Redis Cluster hash
	// tags. Default: "smsrec:".
	Prefix string `json:"prefix,omitempty"`

	// DialTimeout bounds connecting. Default: 2s, or the URL's
	// dial_timeout.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// Timeout bounds one command, sending and waiting for the reply.
	// Default: 1s, or the URL's read_timeout and write_timeout.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is the most connections kept to each server. Default: 32,
	// or the URL's pool_size.
	PoolSize int `json:"pool_size,omitempty"`

	// AllowVolatile accepts a server that keeps nothing on disk (appendonly
	// no and no RDB save point), or one that will not say (CONFIG GET
	// refused and AOF off). Such a server is otherwise refused at load and
	// at every connection (safety.go). The cost: when it restarts, every
	// account lock, every run of wrong codes (the 100 in a row that lock an
	// account for good included), every IP block and every rate limit is
	// gone, so each locked account gets fresh guesses. The gateway notices
	// the loss at the next request and refuses recovery until an operator
	// acknowledges it, but that needs another instance or the server's own
	// epoch key to have survived: a restart of Redis and Caddy together
	// goes unnoticed. Only for a throwaway test server, or a managed one
	// whose persistence cannot be read but is known. Default: false.
	AllowVolatile bool `json:"allow_volatile,omitempty"`

	// AllowEviction accepts a server whose maxmemory-policy is not
	// noeviction (or cannot be read). Such a server is otherwise refused at
	// load and at every connection. The cost: a full server drops keys to
	// make room, the allkeys-* policies any key and the volatile-* ones
	// those with a time to live: locks, IP blocks, rate counters (a fresh
	// SMS budget) and pending flows (a person's code that stops working).
	// A flood can fill it on purpose. Default: false.
	AllowEviction bool `json:"allow_eviction,omitempty"`

	// StateLossHold, when set, lets recovery work again by itself this
	// long after the server was found to have lost its state (a restart
	// without data, a flush, a failover to a replica without it), instead
	// of answering 503 until an operator acknowledges the loss through the
	// admin API (DELETE /sms-recovery/store-loss, or caddy sms-recovery
	// acknowledge-loss). The cost: once it has passed, every account whose
	// lock or run of wrong codes was lost starts afresh. Set it no shorter
	// than the longest lock (lockout's longest, 24h by default), so that
	// temporary locks that were lost would have ended anyway; locks for
	// good (100 wrong codes in a row) that were lost stay lost either way
	// (epoch.go). Default: 0, wait for an operator.
	StateLossHold caddy.Duration `json:"state_loss_hold,omitempty"`

	logger *zap.Logger    // Provision's; nil: Caddy's default
	clock  recovery.Clock // nil: the real one

	// The state, made by Open (connect).
	client redis.UniversalClient
	// minReplicas and waitFor are the WAIT of every write (the URL's min_replicas).
	minReplicas int
	waitFor     time.Duration
	base        string // the prefix and the deployment's hash tag: every key starts so
	batches     batcher
	// guard checks each connection's server (safety.go); epoch and lost
	// keep the deployment's epoch (epoch.go); sentinel, on a Sentinel
	// deployment, tells a stale server from a loss (sentinel.go).
	guard    *serverGuard
	sentinel *sentinelCheck
	alarms   alarms
	epoch    atomic.Pointer[epochState]
	lost     atomic.Pointer[storage.Loss]
}

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storage.Namespace + ".redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision expands the URL's placeholders and fills the defaults.
func (s *Store) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "storage redis: url", &s.URL); err != nil {
		return err
	}
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	s.logger = ctx.Logger()
	return nil
}

// Validate checks the settings: a URL in one of the forms above, a prefix
// without braces.
func (s *Store) Validate() error {
	if s.URL == "" {
		return errors.New("storage redis: a URL is required")
	}
	if strings.ContainsAny(s.Prefix, "{}") {
		return errors.New("storage redis: prefix must not contain braces")
	}
	if _, err := s.options(); err != nil {
		return fmt.Errorf("storage redis: %w", err)
	}
	return nil
}

// Open makes the client and checks the server: one that refuses the
// settings (a wrong or missing password, an ACL without what the store
// needs, a database it does not have, TLS on one side only) is refused with
// a *MisconfiguredError (misconfig.go); one that answers but would forget
// state (no persistence, an evicting maxmemory-policy) is refused unless
// allow_volatile or allow_eviction accepts it (plumbing.go); one that does
// not answer only warns, so that a Redis that is down fails the recovery
// routes (503) and not the config. It returns the Store itself, which keeps
// the rate counters too: Redis runs every request as one plan
// (recovery.Store).
func (s *Store) Open() (*storage.Opened, error) {
	if err := s.connect(); err != nil {
		return nil, err
	}
	logger := s.logger
	if logger == nil {
		logger = caddy.Log()
	}
	routeRedisLogs()
	err := s.probe(context.Background())
	if err == nil {
		err = s.check(context.Background(), logger, time.Duration(s.DialTimeout))
	}
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("storage redis: %w", err)
	}
	return &storage.Opened{Backend: s, Close: s.Close}, nil
}

// connect checks the settings and makes the client, which dials on first
// use. Each connection it opens first checks that the server keeps its
// data (safety.go), and fails with an *UnsafeServerError when it would not.
func (s *Store) connect() error {
	if s.client != nil {
		return errors.New("storage redis: already open")
	}
	if err := s.Validate(); err != nil {
		return err
	}
	opts, _ := s.options() // checked by Validate
	if opts.MasterName != "" {
		s.minReplicas, _ = strconv.Atoi(urlQuery(s.URL).Get("min_replicas")) // checked by sentinelOptions
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	s.waitFor = opts.ReadTimeout / 2
	s.base = keyBase(s.Prefix)
	s.guard = &serverGuard{allowVolatile: s.AllowVolatile, allowEviction: s.AllowEviction, alarm: s.raise}
	opts.OnConnect = s.guard.onConnect
	s.client = redis.NewUniversalClient(opts)
	if opts.MasterName != "" {
		s.sentinel = newSentinelCheck(opts)
		s.client.AddHook(&s.sentinel.conns)
	}
	s.batches.send = s.sendBatch
	return nil
}

// SharedAcrossProcesses implements storage.Shared: every instance on the
// server sees the state.
func (*Store) SharedAcrossProcesses() bool { return true }

// UnmarshalCaddyfile reads
//
//	storage redis <url> {
//	    prefix       <prefix>     # default smsrec:
//	    dial_timeout <duration>   # default 2s
//	    timeout      <duration>   # default 1s
//	    pool_size    <n>          # default 32
//	    allow_volatile            # accept a server that keeps nothing on disk
//	    allow_eviction            # accept a maxmemory-policy other than noeviction
//	    state_loss_hold <duration> # after a loss of state, work again by itself after this long
//	}
func (s *Store) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("storage redis: a url is required (storage redis <url>)")
	}
	d.Prev()
	if err := cfparse.Secret(d, "storage redis: url", &s.URL); err != nil {
		return err
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, "storage redis"); err != nil {
			return err
		}
		var err error
		switch d.Val() {
		case "prefix":
			err = cfparse.String(d, &s.Prefix)
		case "dial_timeout":
			err = cfparse.Duration(d, &s.DialTimeout)
		case "timeout":
			err = cfparse.Duration(d, &s.Timeout)
		case "pool_size":
			err = cfparse.Int(d, &s.PoolSize)
		case "allow_volatile":
			err = switchOn(d, &s.AllowVolatile)
		case "allow_eviction":
			err = switchOn(d, &s.AllowEviction)
		case "state_loss_hold":
			err = cfparse.Duration(d, &s.StateLossHold)
		default:
			return cfparse.Unknown(d, "storage redis")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// switchOn reads a subdirective that takes no argument and sets v.
func switchOn(d *cf.Dispenser, v *bool) error {
	name := d.Val()
	if d.NextArg() {
		return d.Errf("storage redis: %s takes no argument, not '%s'", name, d.Val())
	}
	*v = true
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*Store)(nil)
	_ caddy.Validator   = (*Store)(nil)
	_ cf.Unmarshaler    = (*Store)(nil)
	_ storage.Opener    = (*Store)(nil)
	_ storage.Shared    = (*Store)(nil)
)
