package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// TrailRefs is the most references whose trails the store keeps: those
// written least recently go first. With storage.TrailMax entries each, of
// some 300 bytes, that is at most some 200 MB of a server's memory however
// the trails are flooded, and a few MB for a month of real flows.
const TrailRefs = 20000

func (r *Store) trailKey(ref string) string { return r.base + "trail:" + ref }

func (r *Store) trailIndex() string { return r.base + "trails" }

// AppendTrail adds entries to their references' trails, in one script run
// of its own: the trails are written off the request path, so their
// writes never join the round trip of a request's plan.
func (r *Store) AppendTrail(ctx context.Context, entries []storage.TrailEntry, ttl time.Duration) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]string, 1, len(entries)+1)
	keys[0] = r.trailIndex()
	args := make([]any, 4, len(entries)+4)
	args[0], args[1], args[2], args[3] = r.clock.Now().UnixMilli(), ttl.Milliseconds(), storage.TrailMax, TrailRefs
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding trail entry: %w", err)
		}
		keys = append(keys, r.trailKey(e.Ref))
		args = append(args, b)
	}
	return redisError("append trail", trailScript.Run(ctx, r.client, keys, args...).Err())
}

// Trail returns the entries of ref, oldest first, or none.
func (r *Store) Trail(ctx context.Context, ref string) ([]storage.TrailEntry, error) {
	vals, err := r.client.LRange(ctx, r.trailKey(ref), 0, -1).Result()
	if err != nil {
		return nil, redisError("read trail", err)
	}
	out := make([]storage.TrailEntry, 0, len(vals))
	for _, v := range vals {
		var e storage.TrailEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("decoding trail entry: %w", err)
		}
		e.Ref = ref
		out = append(out, e)
	}
	return out, nil
}

// Interface guards
var _ storage.Trails = (*Store)(nil)
