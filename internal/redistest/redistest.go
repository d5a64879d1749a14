// Package redistest gives tests the Redis server they share: where it is,
// a client of it, and key prefixes of their own that are swept after them.
// A test that needs the server skips with a clear message when it does not
// answer, and fails instead when CI=true, where a missing server is a
// broken pipeline, not a laptop.
//
// It must never touch a key outside a prefix it handed out, nor print the
// server's password.
package redistest

import (
	"context"
	"crypto/rand"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// DefaultURL is the server the tests use when REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL is the server under test: $REDIS_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Redacted is URL without its password, for messages.
func Redacted() string {
	u, err := url.Parse(URL())
	if err != nil {
		return "(unparsable REDIS_URL)"
	}
	return u.Redacted()
}

// Require does nothing when err is nil; otherwise err says why the server
// cannot be used, and Require skips tb, or fails it when CI=true.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		testenv.Missing(tb, "Redis at "+Redacted(),
			"start it (apt-get install redis-server), or set REDIS_URL to a server that answers", err)
	}
}

// Client returns a client of the server at URL, closed when tb ends, or
// skips tb as Require does when the server does not answer. Every call
// opens a client of its own. URL must be a redis:// URL.
func Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		Require(tb, err)
		return nil
	}
	// A plain dial first: a server that is not there is told at once,
	// without the client's retries and the lines they log.
	conn, err := net.DialTimeout(opts.Network, opts.Addr, 3*time.Second)
	if err != nil {
		Require(tb, err)
		return nil
	}
	conn.Close()
	c := redis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	Require(tb, c.Ping(ctx).Err())
	return c
}

// NewPrefix returns a key prefix no other test uses.
func NewPrefix() string {
	return "smsrec-test:" + rand.Text() + ":"
}

// Prefix returns a key prefix of tb's own; its keys are deleted through c
// when tb ends.
func Prefix(tb testing.TB, c redis.UniversalClient) string {
	prefix := NewPrefix()
	Sweep(tb, c, prefix)
	return prefix
}

// Sweep deletes the keys under prefix through c when tb ends, and fails tb
// if it cannot. c must still be open then: a client made before Sweep is
// called and closed by an earlier registered tb.Cleanup is.
func Sweep(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := Keys(ctx, c, prefix)
		if err == nil && len(keys) > 0 {
			// One UNLINK per key, since in a cluster keys sit in many slots.
			_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
		}
		if err != nil {
			tb.Errorf("deleting the keys under %s: %v", prefix, err)
		}
	})
}

// Keys lists the keys under prefix, on every master of a cluster.
func Keys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return scan(ctx, m) })
	} else {
		err = scan(ctx, c)
	}
	return keys, err
}
