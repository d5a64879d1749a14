package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNewClient(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cret"
	tests := []struct {
		name  string
		url   string
		want  string // "" for a client; else part of the error
		check func(t *testing.T, c redis.UniversalClient)
	}{
		{name: "single", url: "redis://:" + secret + "@127.0.0.1:6379/3", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6379" || o.DB != 3 || o.Password != secret {
				t.Errorf("options %s db %d", o.Addr, o.DB)
			}
			if o.ReadTimeout != defaultReadTimeout || o.DialTimeout != defaultDialTimeout || o.PoolSize != defaultPoolSize || o.MaxRetries != defaultMaxRetries {
				t.Errorf("defaults not applied: read %v dial %v pool %d retries %d", o.ReadTimeout, o.DialTimeout, o.PoolSize, o.MaxRetries)
			}
		}},
		{name: "timeouts from the url", url: "redis://127.0.0.1:6379/0?read_timeout=3s", check: func(t *testing.T, c redis.UniversalClient) {
			if o := c.(*redis.Client).Options(); o.ReadTimeout != 3*time.Second {
				t.Errorf("read timeout %v", o.ReadTimeout)
			}
		}},
		{name: "sentinel", url: "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/0?master=mymaster"},
		{name: "cluster", url: "redis-cluster://127.0.0.1:7000,127.0.0.1:7001"},
		{name: "no scheme", url: "127.0.0.1:6379", want: "no scheme"},
		{name: "other scheme", url: "http://u:" + secret + "@127.0.0.1:6379", want: `unsupported redis url scheme "http"`},
		{name: "bad port", url: "redis://u:" + secret + "@127.0.0.1:notaport/0", want: "parsing redis url"},
		{name: "bad database", url: "redis://u:" + secret + "@127.0.0.1:6379/zero", want: "parsing redis url"},
		{name: "bad escape", url: "redis://u:" + secret + "%zz@127.0.0.1:6379/0", want: "parsing redis url"},
		{name: "sentinel without master", url: "redis-sentinel://:" + secret + "@127.0.0.1:26379", want: "no master"},
		{name: "sentinel min_replicas", url: "redis-sentinel://127.0.0.1:26379/0?master=m&min_replicas=1", want: "min_replicas is for the store only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.url)
			if tt.want != "" {
				if err == nil {
					c.Close()
					t.Fatalf("NewClient succeeded, want an error containing %q", tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
					t.Errorf("error %q, want one containing %q and no password", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer c.Close()
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
