package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig/redisnonce"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

func init() {
	caddy.RegisterModule(RedisNonceStore{})
}

// redisNoncePingTimeout bounds the ping at provision.
const redisNoncePingTimeout = 2 * time.Second

// RedisNonceStore is the nonce store
// http.handlers.sms_recovery_verify.nonce_stores.redis: accepted nonces are
// keys on a Redis server, Sentinel or Cluster (see redisnonce.Store), so
// every verifier that uses the same server and prefix accepts a signed
// request at most once between them, across their restarts too. While
// Redis does not answer, signed requests are refused with 503: never let
// through unchecked. JSON: {"store": "redis", "url":
// "redis://127.0.0.1:6379/0", "prefix": "smsrec:"}.
type RedisNonceStore struct {
	// URL is the server, in the forms of the gateway's storage redis:
	// redis://, rediss:// (TLS), redis-sentinel:// or redis-cluster://,
	// with go-redis's query options such as dial_timeout. Placeholders
	// such as {env.REDIS_URL} are expanded; a password in it is never
	// logged or shown in an error. Required.
	URL string `json:"url,omitempty"`

	// Prefix starts every key: <prefix>nonce:<key_id>:<nonce>. Verifiers
	// refuse each other's replays only when they share the server and the
	// prefix. Default: "smsrec:".
	Prefix string `json:"prefix,omitempty"`

	client redis.UniversalClient
	store  *redisnonce.Store
}

// CaddyModule returns the Caddy module information.
func (RedisNonceStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  NonceStoreNamespace + ".redis",
		New: func() caddy.Module { return new(RedisNonceStore) },
	}
}

// Provision expands the URL, makes the client and pings the server, so that
// every load says whether Redis answers. A server that refuses the URL's
// settings (password, ACL, database, TLS) stops the load, saying what to
// change. One that does not answer only warns: the rest of the site must
// load, and Redis may come back; until it does, signed requests get 503.
func (m *RedisNonceStore) Provision(ctx caddy.Context) error {
	if err := placeholder.Expand(nil, "nonce_store redis: url", &m.URL); err != nil {
		return err
	}
	if m.URL == "" {
		return fmt.Errorf("nonce_store redis: a url is required")
	}
	if m.Prefix == "" {
		m.Prefix = redisnonce.DefaultPrefix
	}
	client, err := redisstore.NewClient(m.URL)
	if err != nil {
		return fmt.Errorf("nonce_store redis: %w", err)
	}
	m.client, m.store = client, redisnonce.New(client, m.Prefix)

	pingCtx, cancel := context.WithTimeout(ctx, redisNoncePingTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		if m := redisstore.Misconfigured(err); m != nil {
			return fmt.Errorf("nonce_store redis: %w", m) // Caddy calls Cleanup, which closes the client
		}
		ctx.Logger().Warn("nonce store redis does not answer: signed requests are refused with 503 until it does", zap.Error(err))
	}
	return nil
}

// Claim implements httpsig.NonceStore.
func (m *RedisNonceStore) Claim(ctx context.Context, keyID, nonce string, until, now time.Time) (bool, error) {
	return m.store.Claim(ctx, keyID, nonce, until, now)
}

// Cleanup closes the client.
func (m *RedisNonceStore) Cleanup() error {
	if m.client == nil {
		return nil
	}
	err := m.client.Close()
	m.client = nil
	return err
}

// UnmarshalCaddyfile reads
//
//	nonce_store redis <url> {
//	    prefix <prefix>   # default smsrec:
//	}
func (m *RedisNonceStore) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("nonce_store redis: a url is required (nonce_store redis <url>)")
	}
	d.Prev()
	if err := cfparse.Secret(d, "nonce_store redis: url", &m.URL); err != nil {
		return err
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		if err := seen.Once(d, "nonce_store redis"); err != nil {
			return err
		}
		switch d.Val() {
		case "prefix":
			if err := cfparse.String(d, &m.Prefix); err != nil {
				return err
			}
		default:
			return cfparse.Unknown(d, "nonce_store redis")
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*RedisNonceStore)(nil)
	_ caddy.CleanerUpper = (*RedisNonceStore)(nil)
	_ cf.Unmarshaler     = (*RedisNonceStore)(nil)
	_ httpsig.NonceStore = (*RedisNonceStore)(nil)
)
