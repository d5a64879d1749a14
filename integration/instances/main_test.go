package instances

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/caddybin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

// Set once by TestMain, read by the tests.
var (
	// caddyBin is the path of the Caddy binary built from ./cmd/caddy.
	caddyBin string
	// buildErr says why the binary could not be built.
	buildErr error
	// redisErr says why Redis does not answer; nil when it does.
	redisErr error
)

func TestMain(m *testing.M) {
	redisErr = pingRedis()
	os.Exit(caddybin.Run(m, &caddyBin, &buildErr))
}

// newRedis returns a client of the server under test, through the project's
// own storage package so that every URL form it accepts works here too.
func newRedis() (redis.UniversalClient, error) {
	return redisstore.NewClient(redistest.URL())
}

func pingRedis() error {
	r, err := newRedis()
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return r.Ping(ctx).Err()
}

// needCaddy fails the test if the binary could not be built.
func needCaddy(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// needRedis skips the test when Redis does not answer, or fails it when
// CI=true, where a missing Redis is a broken pipeline, not a laptop.
func needRedis(t *testing.T) {
	t.Helper()
	needCaddy(t)
	redistest.Require(t, redisErr)
}

// newPrefix returns a key prefix of its own for t and removes the keys
// under it when t ends. Every key the gateway writes has a time to live;
// the removal only spares the server an hour of leftovers.
func newPrefix(t *testing.T) string {
	t.Helper()
	r, err := newRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return redistest.Prefix(t, r)
}
