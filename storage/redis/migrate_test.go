package redisstore

import (
	"context"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
)

// TestRedisMigrateLocks writes records as the layout before the hash tag
// kept them, a permanent account lock without a time to live and a client
// block with one, and checks that MigrateLocks moves them where the store
// reads them, keeping both.
func TestRedisMigrateLocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRedis(t, clock.Real{})
	c := r.Client()
	now := time.Now().UnixMilli()
	until := now + time.Hour.Milliseconds()
	oldAccount := r.Prefix + "lock:{account}:target@example.com"
	oldIP := r.Prefix + "lock:{ip}:192.0.2.9"
	for _, err := range []error{
		c.HSet(ctx, oldAccount, "kind", "account", "key", "target@example.com", "since", now, "until", 0,
			"perm", 1, "strikes", 100, "locks", 7, "inwin", 0, "winend", now).Err(),
		c.HSet(ctx, oldIP, "kind", "ip", "key", "192.0.2.9", "since", now, "until", until,
			"perm", 0, "strikes", 20, "locks", 1, "inwin", 0, "winend", now).Err(),
		c.PExpire(ctx, oldIP, time.Hour).Err(),
		c.Do(ctx, "ZADD", r.Prefix+"locks:{ip}", until, oldIP).Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.MigrateLocks(ctx)
	if err != nil || n != 2 {
		t.Fatalf("MigrateLocks: %d, %v; want 2 moved", n, err)
	}
	if l, ok, err := storagetest.GetLock(ctx, r, recovery.KindAccount, "target@example.com"); err != nil || !ok || !l.Permanent || l.Strikes != 100 {
		t.Fatalf("account lock after the move: %+v, %v, %v", l, ok, err)
	}
	if l, ok, err := storagetest.GetLock(ctx, r, recovery.KindIP, "192.0.2.9"); err != nil || !ok || l.Until.UnixMilli() != until {
		t.Fatalf("client block after the move: %+v, %v, %v", l, ok, err)
	}
	if locks, err := r.ListLocks(ctx, recovery.KindAccount); err != nil || len(locks) != 1 {
		t.Fatalf("account locks listed after the move: %v, %v", locks, err)
	}
	if ttl := c.PTTL(ctx, r.lockKey(recovery.KindAccount, "target@example.com")).Val(); ttl != -1 {
		t.Errorf("permanent lock's time to live: %v, want none", ttl)
	}
	if ttl := c.PTTL(ctx, r.lockKey(recovery.KindIP, "192.0.2.9")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("block's time to live: %v, want up to 1h", ttl)
	}
	if n := c.Exists(ctx, oldAccount, oldIP, r.Prefix+"locks:{ip}").Val(); n != 0 {
		t.Errorf("%d old keys left", n)
	}
	if n, err := r.MigrateLocks(ctx); err != nil || n != 0 {
		t.Errorf("second MigrateLocks: %d, %v; want nothing to move", n, err)
	}
}
