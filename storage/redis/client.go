package redisstore

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// NewClient returns a client for url, in any form Store.URL takes
// (redis://, rediss://, redis-sentinel://, redis-cluster://), with the
// store's defaults and retry policy, so that the project reads Redis URLs
// one way. Other users of a Redis server, such as the verifier's nonce
// store, build their clients with it. It does not connect. Its errors never
// hold the URL, which may hold a password. go-redis's own log lines go
// through Caddy's logger from then on, as they do for the store.
//
// min_replicas, which makes the store's writes wait for replicas, is
// refused: these users write through their own commands.
func NewClient(url string) (redis.UniversalClient, error) {
	if urlQuery(url).Has("min_replicas") {
		return nil, errors.New("min_replicas is for the store only")
	}
	opts, err := (&Store{URL: url}).options()
	if err != nil {
		return nil, err
	}
	routeRedisLogs()
	return redis.NewUniversalClient(opts), nil
}

// Misconfigured returns err, from a client NewClient made, as a
// *MisconfiguredError when the server answered but refused the client's
// settings (its password, ACL, database or TLS), and nil otherwise, such as
// for a server that does not answer: the first is a mistake in the URL to
// refuse at load, the second an outage to wait out.
func Misconfigured(err error) error {
	if m := misconfigured(err); m != nil {
		return m
	}
	return nil
}
