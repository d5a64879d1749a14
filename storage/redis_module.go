package storage

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
)

func init() {
	caddy.RegisterModule(RedisModule{})
}

// DefaultRedisPrefix starts every key when no prefix is given.
const DefaultRedisPrefix = "smsrec:"

// RedisModule is the store http.handlers.sms_recovery.storage.redis: state
// on a Redis server, Sentinel or Cluster, shared by every Caddy instance
// that uses the same server and prefix (see Redis). JSON: {"backend":
// "redis", "url": "redis://127.0.0.1:6379/0"}. The gateway requires its
// secrets to be set with it, so that every instance hashes alike.
type RedisModule struct {
	// URL is redis://, rediss:// (TLS), redis-sentinel:// or
	// redis-cluster:// (see RedisConfig.URL). Placeholders such as
	// {env.REDIS_URL} are expanded; a password in it is never logged.
	// Required.
	URL string `json:"url,omitempty"`

	// Prefix starts every key. Default: "smsrec:".
	Prefix string `json:"prefix,omitempty"`

	// DialTimeout bounds connecting. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// Timeout bounds one command. Default: 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is the most connections kept per instance. Default: 32.
	PoolSize int `json:"pool_size,omitempty"`

	// AllowVolatile accepts a server that keeps nothing on disk (appendonly
	// no and no RDB save point), or one that will not say (CONFIG GET
	// refused and AOF off). Such a server is otherwise refused at load and
	// at every connection. The cost: when it restarts, every account lock,
	// every run of wrong codes (the 100 in a row that lock an account for
	// good included), every IP block and every rate limit is gone, so each
	// locked account gets fresh guesses. The gateway notices the loss at
	// the next request and refuses recovery until an operator acknowledges
	// it, but that needs another instance or the server's own epoch key to
	// have survived: a restart of Redis and Caddy together goes unnoticed.
	// Only for a throwaway test server, or a managed one whose persistence
	// cannot be read but is known. Default: false.
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
	// good (100 wrong codes in a row) that were lost stay lost either way.
	// Default: 0, wait for an operator.
	StateLossHold caddy.Duration `json:"state_loss_hold,omitempty"`

	// checked is the store Provision checked the server with: the store
	// Open makes expects the epoch it read.
	checked *Redis
}

// CaddyModule returns the Caddy module information.
func (RedisModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".redis",
		New: func() caddy.Module { return new(RedisModule) },
	}
}

// Provision expands the URL, fills the defaults and checks the settings.
// It routes go-redis's log lines through Caddy's logger, and checks the
// server with a client of its own, closed at once, so that every load (a
// reload too, which reuses the open state) says whether Redis answers. A
// server that answers but would forget state (no persistence, an evicting
// maxmemory-policy) is refused unless allow_volatile or allow_eviction
// accepts it; one that does not answer only warns (see checkRedis).
func (m *RedisModule) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "storage redis: url", &m.URL); err != nil {
		return err
	}
	if m.URL == "" {
		return errors.New("storage redis: a URL is required")
	}
	if m.Prefix == "" {
		m.Prefix = DefaultRedisPrefix
	}
	rs, err := NewRedis(m.config(), clock.Real{})
	if err != nil {
		return fmt.Errorf("storage redis: %w", err)
	}
	defer rs.Close()
	routeRedisLogs()
	if err := checkRedis(ctx, ctx.Logger(), rs, time.Duration(m.DialTimeout)); err != nil {
		return fmt.Errorf("storage redis: %w", err)
	}
	m.checked = rs
	return nil
}

func (m *RedisModule) config() RedisConfig {
	return RedisConfig{
		URL:          m.URL,
		Prefix:       m.Prefix,
		DialTimeout:  time.Duration(m.DialTimeout),
		ReadTimeout:  time.Duration(m.Timeout),
		WriteTimeout: time.Duration(m.Timeout),
		PoolSize:     m.PoolSize,

		AllowVolatile: m.AllowVolatile,
		AllowEviction: m.AllowEviction,
		LossHold:      time.Duration(m.StateLossHold),
	}
}

// Open makes the client and the store, which keeps the rate counters too:
// Redis runs every request as one plan (limiter.PlanStore). It does not
// connect, so a Redis that is down fails the recovery routes (503) and not
// the config.
func (m *RedisModule) Open() (*Opened, error) {
	rs, err := NewRedis(m.config(), clock.Real{})
	if err != nil {
		return nil, fmt.Errorf("storage redis: %w", err)
	}
	if m.checked != nil {
		rs.inheritEpoch(m.checked)
	}
	return &Opened{Backend: rs, Close: rs.Close}, nil
}

// SharedAcrossProcesses implements Shared: every instance on the server
// sees the state.
func (m *RedisModule) SharedAcrossProcesses() bool { return true }

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
func (m *RedisModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("storage redis: a url is required (storage redis <url>)")
	}
	m.URL = d.Val()
	if d.NextArg() {
		return d.Errf("storage redis: one url, not '%s' too", d.Val())
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, "storage redis"); err != nil {
			return err
		}
		var err error
		switch d.Val() {
		case "prefix":
			err = cfparse.String(d, &m.Prefix)
		case "dial_timeout":
			err = cfparse.Duration(d, &m.DialTimeout)
		case "timeout":
			err = cfparse.Duration(d, &m.Timeout)
		case "pool_size":
			err = cfparse.Int(d, &m.PoolSize)
		case "allow_volatile":
			err = switchOn(d, &m.AllowVolatile)
		case "allow_eviction":
			err = switchOn(d, &m.AllowEviction)
		case "state_loss_hold":
			err = cfparse.Duration(d, &m.StateLossHold)
		default:
			return d.Errf("storage redis: unrecognized subdirective '%s'", d.Val())
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
	_ caddy.Provisioner = (*RedisModule)(nil)
	_ cf.Unmarshaler    = (*RedisModule)(nil)
	_ Opener            = (*RedisModule)(nil)
	_ Shared            = (*RedisModule)(nil)
)
