package storage

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// recordFields are lockFields and "imposed": the start, in ms, of the lock
// support imposed on the record last. The lock in force is support's when
// it began then; a lock that wrong codes set later begins later, so the
// scripts that strike need not know of the field.
var recordFields = append(slices.Clip(lockFields), "imposed")

// imposeScript is limiter.Impose on the server: it locks a record for a
// time or until lifted, never shortening a lock in force, keeps its
// strikes and window, and indexes the lock. A record made for the lock
// alone lives as long as the lock; one kept for good (an account's run)
// stays so; one that lives for a client's window lives until the later of
// the window and the lock. It returns {set, the values of recordFields}.
// KEYS[1] record, KEYS[2] index; ARGV[1] now (ms), ARGV[2] the lock's
// length (ms; 0: until lifted), ARGV[3] kind, ARGV[4] key.
var imposeScript = redis.NewScript(`
local now, d = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
local r = redis.call('HMGET', KEYS[1], 'since', 'until', 'perm', 'strikes', 'locks', 'inwin', 'winend')
local since, untilms = tonumber(r[1]) or 0, tonumber(r[2]) or 0
local perm = r[3] == '1'
local strikes, locks = tonumber(r[4]) or 0, tonumber(r[5]) or 0
local inwin, winend = tonumber(r[6]) or 0, tonumber(r[7]) or 0
local set = 0
if not (perm or untilms > now) then set, since = 1, now end
if d == 0 then
	perm, untilms = true, 0
elseif not perm and untilms < now + d then
	untilms = now + d
end
redis.call('HSET', KEYS[1], 'kind', ARGV[3], 'key', ARGV[4], 'since', since, 'until', untilms,
	'perm', perm and 1 or 0, 'strikes', strikes, 'locks', locks, 'inwin', inwin, 'winend', winend, 'imposed', since)
if perm or ttl == -1 then
	redis.call('PERSIST', KEYS[1])
else
	redis.call('PEXPIRE', KEYS[1], math.max(ttl, untilms - now))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], perm and '+inf' or untilms, KEYS[1])
return {set, ARGV[3], ARGV[4], since, untilms, perm and 1 or 0, strikes, locks, inwin, winend, since}
`)

// Impose locks kind and key for d, or until EndRun when d is 0, as
// limiter.Impose does, in one script.
func (r *Redis) Impose(ctx context.Context, kind, key string, d time.Duration) (limiter.Lock, bool, error) {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1 // a lock for under a millisecond is not one until lifted
	}
	res, err := r.run(ctx, imposeScript, []string{r.lockKey(kind, key), r.lockIndex(kind)},
		r.clock.Now().UnixMilli(), ms, kind, key).Slice()
	if err != nil {
		return limiter.Lock{}, false, redisError("impose", err)
	}
	if len(res) != 1+len(recordFields) {
		return limiter.Lock{}, false, errors.New("impose: malformed reply from redis")
	}
	rec, err := decodeImposed(res[1:])
	if err != nil {
		return limiter.Lock{}, false, err
	}
	set, _ := res[0].(int64)
	return rec.Lock, set == 1, nil
}

// decodeImposed builds a record from the values of recordFields, its lock
// support's when it began when support imposed one.
func decodeImposed(vals []any) (limiter.Record, error) {
	if len(vals) != len(recordFields) {
		return limiter.Record{}, errors.New("decoding lock: malformed reply from redis")
	}
	rec, err := decodeRecord(vals[:len(lockFields)])
	if err != nil {
		return rec, err
	}
	var imposed int64
	switch v := vals[len(lockFields)].(type) {
	case int64:
		imposed = v
	case string:
		imposed, _ = strconv.ParseInt(v, 10, 64)
	}
	if imposed != 0 && imposed == rec.Since.UnixMilli() {
		rec.Reason = limiter.ReasonSupport
	}
	return rec, nil
}
