package redisstore

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// options turns the settings into client options, with the defaults filled.
func (s *Store) options() (*redis.UniversalOptions, error) {
	scheme, _, ok := strings.Cut(s.URL, "://")
	if !ok {
		return nil, errors.New("redis url has no scheme")
	}
	var (
		o   *redis.UniversalOptions
		err error
	)
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		o, err = singleOptions(s.URL)
	case "redis-sentinel":
		o, err = sentinelOptions(s.URL)
	case "redis-cluster":
		o, err = clusterOptions(s.URL)
	default:
		return nil, fmt.Errorf("unsupported redis url scheme %q", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s url: %w", scheme, err)
	}
	o.DialTimeout = cmp.Or(time.Duration(s.DialTimeout), o.DialTimeout, defaultDialTimeout)
	o.ReadTimeout = cmp.Or(time.Duration(s.Timeout), o.ReadTimeout, defaultReadTimeout)
	o.WriteTimeout = cmp.Or(time.Duration(s.Timeout), o.WriteTimeout, defaultWriteTimeout)
	o.PoolSize = cmp.Or(s.PoolSize, o.PoolSize, defaultPoolSize)
	o.MaxRetries = cmp.Or(o.MaxRetries, defaultMaxRetries)
	o.DialerRetries = cmp.Or(o.DialerRetries, defaultDialerRetries)
	// A request's own deadline also bounds its Redis calls.
	o.ContextTimeoutEnabled = true
	return o, nil
}

// singleOptions parses a redis:// or rediss:// URL.
func singleOptions(raw string) (*redis.UniversalOptions, error) {
	s, err := redis.ParseURL(raw)
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:           []string{s.Addr},
		ClientName:      s.ClientName,
		DB:              s.DB,
		Protocol:        s.Protocol,
		Username:        s.Username,
		Password:        s.Password,
		TLSConfig:       s.TLSConfig,
		MaxRetries:      s.MaxRetries,
		MinRetryBackoff: s.MinRetryBackoff,
		MaxRetryBackoff: s.MaxRetryBackoff,
		DialTimeout:     s.DialTimeout,
		ReadTimeout:     s.ReadTimeout,
		WriteTimeout:    s.WriteTimeout,
		PoolFIFO:        s.PoolFIFO,
		PoolSize:        s.PoolSize,
		PoolTimeout:     s.PoolTimeout,
		MinIdleConns:    s.MinIdleConns,
		MaxIdleConns:    s.MaxIdleConns,
		MaxActiveConns:  s.MaxActiveConns,
		ConnMaxIdleTime: s.ConnMaxIdleTime,
		ConnMaxLifetime: s.ConnMaxLifetime,

		ConnMaxLifetimeJitter:   s.ConnMaxLifetimeJitter,
		MaxConcurrentDials:      s.MaxConcurrentDials,
		PipelinePoolSize:        s.PipelinePoolSize,
		PipelineReadBufferSize:  s.PipelineReadBufferSize,
		PipelineWriteBufferSize: s.PipelineWriteBufferSize,
	}, nil
}

// sentinelOptions parses a redis-sentinel:// URL with go-redis's
// ParseFailoverURL. Our form lists every sentinel in the host and gives the
// master's password in the userinfo, as redis:// does; go-redis's lists the
// others in addr= and gives the sentinels' credentials in the userinfo, so
// the URL is rewritten into that form first. Every other query option is
// go-redis's own (dial_timeout, pool_size, ...).
func sentinelOptions(raw string) (*redis.UniversalOptions, error) {
	u, addrs, err := splitHosts(raw)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	master := q.Get("master")
	if v := q.Get("min_replicas"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return nil, fmt.Errorf("invalid min_replicas %q", v)
		}
	}
	q.Del("min_replicas") // ours: read by connect
	if master == "" {
		return nil, errors.New("no master: add ?master=<name>")
	}
	for _, name := range []string{"master_name", "username", "password", "addr"} {
		if q.Has(name) {
			return nil, fmt.Errorf("unknown option %q", name) // they are set by the URL's other parts
		}
	}
	theirs := url.URL{Scheme: "redis", Host: addrs[0], Path: u.Path}
	if q.Has("sentinel_password") {
		theirs.User = url.UserPassword("", q.Get("sentinel_password"))
	}
	q.Del("master")
	q.Del("sentinel_password")
	q.Set("master_name", master)
	if name := u.User.Username(); name != "" {
		q.Set("username", name)
	}
	if pw, ok := u.User.Password(); ok {
		q.Set("password", pw)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	theirs.RawQuery = q.Encode()
	f, err := redis.ParseFailoverURL(theirs.String())
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:            f.SentinelAddrs,
		MasterName:       f.MasterName,
		SentinelUsername: f.SentinelUsername,
		SentinelPassword: f.SentinelPassword,
		ClientName:       f.ClientName,
		DB:               f.DB,
		Protocol:         f.Protocol,
		Username:         f.Username,
		Password:         f.Password,
		TLSConfig:        f.TLSConfig,
		MaxRetries:       f.MaxRetries,
		MinRetryBackoff:  f.MinRetryBackoff,
		MaxRetryBackoff:  f.MaxRetryBackoff,
		DialTimeout:      f.DialTimeout,
		ReadTimeout:      f.ReadTimeout,
		WriteTimeout:     f.WriteTimeout,
		PoolFIFO:         f.PoolFIFO,
		PoolSize:         f.PoolSize,
		PoolTimeout:      f.PoolTimeout,
		MinIdleConns:     f.MinIdleConns,
		MaxIdleConns:     f.MaxIdleConns,
		MaxActiveConns:   f.MaxActiveConns,
		ConnMaxIdleTime:  f.ConnMaxIdleTime,
		ConnMaxLifetime:  f.ConnMaxLifetime,
		RouteByLatency:   f.RouteByLatency,
		RouteRandomly:    f.RouteRandomly,
	}, nil
}

// clusterOptions parses a redis-cluster:// URL with go-redis's
// ParseClusterURL, after moving every node but the first into addr=.
// Query options are go-redis's own.
func clusterOptions(raw string) (*redis.UniversalOptions, error) {
	u, addrs, err := splitHosts(raw)
	if err != nil {
		return nil, err
	}
	if strings.Trim(u.Path, "/") != "" {
		return nil, errors.New("a cluster has no database number")
	}
	q := u.Query()
	if q.Has("addr") {
		return nil, errors.New(`unknown option "addr"`) // the nodes are the URL's hosts
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	theirs := url.URL{Scheme: "redis", User: u.User, Host: addrs[0], RawQuery: q.Encode()}
	c, err := redis.ParseClusterURL(theirs.String())
	if err != nil {
		return nil, withoutURL(err)
	}
	return &redis.UniversalOptions{
		Addrs:           c.Addrs,
		IsClusterMode:   true,
		ClientName:      c.ClientName,
		Protocol:        c.Protocol,
		Username:        c.Username,
		Password:        c.Password,
		TLSConfig:       c.TLSConfig,
		MaxRedirects:    c.MaxRedirects,
		ReadOnly:        c.ReadOnly,
		RouteByLatency:  c.RouteByLatency,
		RouteRandomly:   c.RouteRandomly,
		MaxRetries:      c.MaxRetries,
		MinRetryBackoff: c.MinRetryBackoff,
		MaxRetryBackoff: c.MaxRetryBackoff,
		DialTimeout:     c.DialTimeout,
		ReadTimeout:     c.ReadTimeout,
		WriteTimeout:    c.WriteTimeout,
		PoolFIFO:        c.PoolFIFO,
		PoolSize:        c.PoolSize,
		PoolTimeout:     c.PoolTimeout,
		MinIdleConns:    c.MinIdleConns,
		MaxIdleConns:    c.MaxIdleConns,
		MaxActiveConns:  c.MaxActiveConns,
		ConnMaxIdleTime: c.ConnMaxIdleTime,
		ConnMaxLifetime: c.ConnMaxLifetime,
	}, nil
}

// urlQuery returns the query of a URL that splitHosts parses.
func urlQuery(raw string) url.Values {
	u, _, err := splitHosts(raw)
	if err != nil {
		return nil
	}
	return u.Query()
}

// splitHosts takes the comma-separated host:port list out of raw, which
// net/url cannot parse when it holds IPv6 literals, and parses the rest.
func splitHosts(raw string) (*url.URL, []string, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(scheme + "://" + userinfo + "hosts" + tail)
	if err != nil {
		return nil, nil, withoutURL(err)
	}
	var addrs []string
	for i, addr := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			// The address is left out of the message: in a URL gone
			// wrong it may hold part of a password.
			return nil, nil, fmt.Errorf("address %d is not host:port", i+1)
		}
		addrs = append(addrs, addr)
	}
	return u, addrs, nil
}

// withoutURL drops the URL that net/url puts in its errors, since it may
// hold a password.
func withoutURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
