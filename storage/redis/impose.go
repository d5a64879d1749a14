package redisstore

import (
	"context"
	"errors"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"slices"
	"strconv"
	"time"
)

// recordFields are lockFields and "imposed": the start, in ms, of the lock
// support imposed on the record last. The lock in force is support's when
// it began then; a lock that wrong codes set later begins later, so the
// scripts that strike need not know of the field.
var recordFields = append(slices.Clip(lockFields), "imposed")

// Impose locks kind and key for d, or until EndRun when d is 0, as
// limiter.Impose does, in one script (lua/impose.lua).
func (r *Store) Impose(ctx context.Context, kind, key string, d time.Duration) (recovery.Lock, bool, error) {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1 // a lock for under a millisecond is not one until lifted
	}
	res, err := r.run(ctx, imposeScript, []string{r.lockKey(kind, key), r.lockIndex(kind)},
		"impose", r.clock.Now().UnixMilli(), ms, kind, key).Slice()
	if err != nil {
		return recovery.Lock{}, false, redisError("impose", err)
	}
	if len(res) != 1+len(recordFields) {
		return recovery.Lock{}, false, errors.New("impose: malformed reply from redis")
	}
	rec, err := decodeImposed(res[1:])
	if err != nil {
		return recovery.Lock{}, false, err
	}
	set, _ := res[0].(int64)
	return rec.Lock, set == 1, nil
}

// decodeImposed builds a record from the values of recordFields, its lock
// support's when it began when support imposed one.
func decodeImposed(vals []any) (recovery.Record, error) {
	if len(vals) != len(recordFields) {
		return recovery.Record{}, errors.New("decoding lock: malformed reply from redis")
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
		rec.Reason = recovery.ReasonSupport
	}
	return rec, nil
}
