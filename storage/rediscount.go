package storage

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	ulimiter "github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"
)

// countLua defines count, the one counter step of Redis: the counts of a
// plan (planLua) and the ulimiter.Store methods (counterScript) both take
// it. It is ulule's fixed window as its Redis store keeps it: the key holds
// the count, and its time to live is what is left of the window, which
// opens with the first event.
//
// count(k, n, window, upto) adds n events (0 reads) to the counter k, whose
// window lasts window ms, and returns the count and, once the count reaches
// upto, the ms left of the window; below upto it returns -1 for them, which
// spares a plan's count within its limit the PTTL. A counter that lost its
// time to live (PERSIST) gets a whole window back when it is read so,
// rather than counting for good.
const countLua = `
local function count(k, n, window, upto)
	local c
	if n > 0 then
		c = redis.call('INCRBY', k, n)
		if c == n then
			redis.call('PEXPIRE', k, window)
			return c, window
		end
	else
		c = tonumber(redis.call('GET', k) or '0')
	end
	if c < upto then return c, -1 end
	local ttl = redis.call('PTTL', k)
	if ttl == -1 then redis.call('PEXPIRE', k, window) end
	if ttl < 0 then ttl = window end
	return c, ttl
end
`

// counterScript is Redis's ulimiter.Store: count on KEYS[1], after
// deleting it when ARGV[3] is 1 (Reset). ARGV[1] events (0 reads), ARGV[2]
// the window (ms). It returns {count, ms left of the window}.
var counterScript = redis.NewScript(countLua + `
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
return {count(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0)}
`)

// Get counts one event for key and returns the state of its window, as
// ulule's stores do, in one round trip. A key is scope:key, as the guard
// names its counters (limiter.Count): a plan's count of that scope and key
// is the same counter.
func (r *Redis) Get(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 1, rate, false)
}

// Increment counts n events for key and returns the state of its window.
func (r *Redis) Increment(ctx context.Context, key string, n int64, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, n, rate, false)
}

// Peek returns the state of key's window without counting an event.
func (r *Redis) Peek(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 0, rate, false)
}

// Reset forgets key's counter and returns the state of a fresh window.
func (r *Redis) Reset(ctx context.Context, key string, rate ulimiter.Rate) (ulimiter.Context, error) {
	return r.counter(ctx, key, 0, rate, true)
}

// counter runs counterScript on the counter of key.
func (r *Redis) counter(ctx context.Context, key string, n int64, rate ulimiter.Rate, reset bool) (ulimiter.Context, error) {
	res, err := r.run(ctx, counterScript, []string{r.base + "count:" + key}, n, rate.Period.Milliseconds(), flag(reset)).Int64Slice()
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
var _ ulimiter.Store = (*Redis)(nil)
