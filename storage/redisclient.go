package storage

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewRedisClient returns a client for cfg.URL, in any form RedisConfig.URL
// takes (redis://, rediss://, redis-sentinel://, redis-cluster://), with
// cfg's timeouts and pool size and the store's defaults and retry policy,
// so that the project reads Redis URLs one way. Other users of a Redis
// server, such as the verifier's nonce store, build their clients with it.
// cfg.Prefix is theirs to use. It does not connect. Its errors never hold
// the URL, which may hold a password. go-redis's own log lines go through
// Caddy's logger from then on, as they do for the store.
//
// min_replicas, which makes the store's writes wait for replicas, is
// refused: these users write through their own commands.
func NewRedisClient(cfg RedisConfig) (redis.UniversalClient, error) {
	if cfg.MinReplicas != 0 {
		return nil, errors.New("min replicas is for the store only")
	}
	if scheme, _, _ := strings.Cut(cfg.URL, "://"); strings.EqualFold(scheme, "redis-sentinel") && urlQuery(cfg.URL).Has("min_replicas") {
		return nil, errors.New("min_replicas is for the store only")
	}
	opts, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	routeRedisLogs()
	return redis.NewUniversalClient(opts), nil
}
