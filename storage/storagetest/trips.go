package storagetest

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// RedisTrips is a go-redis hook that counts what a client sends: each
// command or pipeline is one round trip to the server. A new connection's
// own setup does not pass through it. Add it with client.AddHook.
type RedisTrips struct {
	All      atomic.Int64 // round trips
	Scripted atomic.Int64 // round trips that carry a script (EVAL or EVALSHA)
	Scripts  atomic.Int64 // scripts sent
	// Background, when set, leaves out what is sent off the request path
	// (storage.Background): the trails' writes and the connections they
	// open.
	Background bool
}

func (h *RedisTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *RedisTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(ctx, []redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (h *RedisTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.count(ctx, cmds)
		return next(ctx, cmds)
	}
}

func (h *RedisTrips) count(ctx context.Context, cmds []redis.Cmder) {
	if h.Background && storage.IsBackground(ctx) {
		return
	}
	h.All.Add(1)
	scripts := int64(0)
	for _, c := range cmds {
		if n := c.Name(); n == "eval" || n == "evalsha" {
			scripts++
		}
	}
	if scripts > 0 {
		h.Scripted.Add(1)
		h.Scripts.Add(scripts)
	}
}

var _ redis.Hook = (*RedisTrips)(nil)
