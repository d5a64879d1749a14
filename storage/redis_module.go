package storage

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
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
}

// CaddyModule returns the Caddy module information.
func (RedisModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".redis",
		New: func() caddy.Module { return new(RedisModule) },
	}
}

// Provision expands the URL, fills the defaults and checks the settings.
// It routes go-redis's log lines through Caddy's logger, and pings the
// server with a client of its own, closed at once, so that every load (a
// reload too, which reuses the open state) says whether Redis answers and
// whether it evicts keys. A failed ping only warns.
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
	rs, err := NewRedis(m.config(), recovery.SystemClock{})
	if err != nil {
		return fmt.Errorf("storage redis: %w", err)
	}
	defer rs.Close()
	routeRedisLogs()
	checkRedis(ctx, ctx.Logger(), rs, time.Duration(m.DialTimeout))
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
	}
}

// Open makes the client and the store, which keeps the rate counters too:
// Redis runs every request as one plan (limiter.PlanStore). It does not
// connect, so a Redis that is down fails the recovery routes (503) and not
// the config.
func (m *RedisModule) Open() (*Opened, error) {
	rs, err := NewRedis(m.config(), recovery.SystemClock{})
	if err != nil {
		return nil, fmt.Errorf("storage redis: %w", err)
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
		default:
			return d.Errf("storage redis: unrecognized subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*RedisModule)(nil)
	_ cf.Unmarshaler    = (*RedisModule)(nil)
	_ Opener            = (*RedisModule)(nil)
	_ Shared            = (*RedisModule)(nil)
)
