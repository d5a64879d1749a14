package redisstore

import (
	"context"
	"errors"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"
)

// Get counts one event for key and returns the state of its window, as
// ulule's stores do, in one round trip. A key is scope:key, as the guard
// names its counters (recovery.Count): a plan's count of that scope and key
// is the same counter.
func (r *Store) Get(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 1, rate, false)
}

// Increment counts n events for key and returns the state of its window.
func (r *Store) Increment(ctx context.Context, key string, n int64, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, n, rate, false)
}

// Peek returns the state of key's window without counting an event.
func (r *Store) Peek(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 0, rate, false)
}

// Reset forgets key's counter and returns the state of a fresh window.
func (r *Store) Reset(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 0, rate, true)
}

// counter runs counterScript (lua/counter.lua, by lua/count.lua's count)
// on the counter of key.
func (r *Store) counter(ctx context.Context, key string, n int64, rate ulimiter.Rate, reset bool) (ulimiter.Context, error) {
	op := "count"
	if reset {
		op = "reset"
	}
	res, err := r.run(ctx, counterScript, []string{r.base + "count:" + key}, op, n, rate.Period.Milliseconds()).Int64Slice()
	if err != nil {
		return ulimiter.Context{}, redisError("count", err)
	}
	if len(res) != 2 {
		return ulimiter.Context{}, errors.New("count: malformed reply from redis")
	}
	now := r.clock.Now()
	return common.GetContextFromState(now, rate, now.Add(time.Duration(res[1])*time.Millisecond), res[0]), nil
}

// Interface guards
var _ ulimiter.Store = (*Store)(nil)
