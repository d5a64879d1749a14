package module

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// TestStartOnRedisIsOneRoundTrip checks that POST /start on Redis asks the
// server once, whatever the account: after the lookup, the lock checks,
// the counters, the new flow and its code's counters are one plan. The SMS
// queue then delivers the code without asking the server.
func TestStartOnRedisIsOneRoundTrip(t *testing.T) {
	g := newBenchGateway(t, redisTestStorage(t))
	rs, ok := g.h.store.backend.(*redisstore.Store)
	if !ok {
		t.Fatalf("backend is %T, not Redis", g.h.store.backend)
	}
	// Connections, set up: each new one is checked (OnConnect) in the
	// context of whatever needed it. The trails' writer uses one now and
	// then beside the requests, so the pool holds several before counting:
	// four BLPOPs at once, each on a connection of its own, which return to
	// the pool when the server times them out.
	var warm errgroup.Group
	for range 4 {
		warm.Go(func() error {
			return rs.Client().BLPop(context.Background(), 100*time.Millisecond, "smsrec-test:warm:"+t.Name()).Err()
		})
	}
	if err := warm.Wait(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	// The trails are written off the request path, in their own trips.
	trips := &storagetest.RedisTrips{Background: true}
	rs.Client().AddHook(trips)
	sent0 := benchSentCount.Load()
	for _, account := range []string{"nobody@example.com", "alice@example.com", "nobody2@example.com"} {
		before := trips.All.Load()
		if w := g.post("/recovery/start", []byte(`{"account":"`+account+`"}`)); w.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", w.Code, w.Body)
		}
		if got := trips.All.Load() - before; got != 1 {
			t.Errorf("/start for %s: %d round trips to Redis, want 1", account, got)
		}
	}
	before := trips.All.Load()
	if !benchSent.Await(30*time.Second, func() bool { return benchSentCount.Load()-sent0 >= 1 }) {
		t.Fatal("alice's code was not sent within 30s")
	}
	if got := trips.All.Load() - before; got != 0 {
		t.Errorf("delivering a code: %d round trips to Redis, want none", got)
	}
}

// TestFileDirectoryChecksNumbersAhead checks that the gateway hands the
// file directory its phone policy, so that the file's numbers are checked
// as it loads and unknown accounts draw pre-checked stand-ins.
func TestFileDirectoryChecksNumbersAhead(t *testing.T) {
	g := newBenchGateway(t, memoryStorage(1000))
	c, ok := g.h.dir.(recovery.PhonesChecked)
	if !ok || !c.PhonesChecked() {
		t.Fatalf("directory %T: its numbers were not checked as it loaded", g.h.dir)
	}
}

// TestPhonePoliciesArePooled checks that handlers with the same allowed
// countries, in any order and case, share one phone policy (and so the
// numbers it checked) while one of them holds it, and that other countries
// get another.
func TestPhonePoliciesArePooled(t *testing.T) {
	a, b, c := &Handler{AllowedCountries: []string{"NL", "de"}}, &Handler{AllowedCountries: []string{" DE", "nl"}}, &Handler{AllowedCountries: []string{"BE"}}
	pa, err := a.loadPhonePolicy()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.loadPhonePolicy()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := c.loadPhonePolicy()
	if err != nil {
		t.Fatal(err)
	}
	if pa != pb || pa == pc {
		t.Fatalf("NL,de and DE,nl share: %v; NL,de and BE share: %v", pa == pb, pa == pc)
	}
	for _, h := range []*Handler{a, b, c} {
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := phonePolicies.References("phones:DE,NL"); ok {
		t.Fatal("the pooled policy outlived its handlers")
	}
}

// TestReadyLogGivesMemoryLimit checks that the line a gateway logs when it
// is ready gives the soft memory limit its memory storage set.
func TestReadyLogGivesMemoryLimit(t *testing.T) {
	g := newOpsGateway(t, map[string]string{}, nil) // logs as it provisions
	want, ok := memory.SoftMemoryLimit()
	if !ok {
		t.Skip("skipped: GOMEMLIMIT is set, so the memory storage sets no limit of its own; unset it to run this test")
	}
	lines := g.logs.FilterMessage("sms recovery ready").All()
	if len(lines) != 1 {
		t.Fatalf("%d ready lines", len(lines))
	}
	if got, ok := lines[0].ContextMap()["go_memory_limit"]; !ok || got != want {
		t.Fatalf("go_memory_limit = %v (%v), want %d", got, ok, want)
	}
}
