package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// TestBatcher checks how scripts share round trips: a lone call goes out at
// once, the calls that arrive while a batch is out go together in the next
// one, each gets its own reply, and a batch that fails fails each of its
// calls.
func TestBatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan error)
		var mu sync.Mutex
		var sizes []int
		b := &batcher{send: func(ctx context.Context, batch []*scriptCall) {
			mu.Lock()
			sizes = append(sizes, len(batch))
			mu.Unlock()
			err := <-release
			for _, c := range batch {
				c.cmd = redis.NewCmd(ctx)
				if err != nil {
					c.cmd.SetErr(err)
				} else {
					c.cmd.SetVal(fmt.Sprint("reply to ", c.args[0]))
				}
			}
		}}
		script := redis.NewScript("return 1")
		replies := make(chan string, 32)
		call := func(i int) {
			cmd := b.run(context.Background(), script, nil, []any{i})
			if cmd.Err() != nil {
				replies <- fmt.Sprintf("%d: %v", i, cmd.Err())
				return
			}
			replies <- fmt.Sprintf("%d: %v", i, cmd.Val())
		}
		go call(0)
		synctest.Wait() // 0's batch is out
		for i := 1; i <= 10; i++ {
			go call(i)
		}
		synctest.Wait() // 1 to 10 are queued behind it
		release <- nil  // 0's batch comes back
		if got := <-replies; got != "0: reply to 0" {
			t.Fatalf("first reply: %q", got)
		}
		synctest.Wait() // 1 to 10 are out, in one batch
		release <- nil
		got := map[string]bool{}
		for range 10 {
			got[<-replies] = true
		}
		for i := 1; i <= 10; i++ {
			if want := fmt.Sprintf("%d: reply to %d", i, i); !got[want] {
				t.Errorf("no %q among %v", want, got)
			}
		}
		mu.Lock()
		if fmt.Sprint(sizes) != "[1 10]" {
			t.Errorf("batches of %v, want [1 10]", sizes)
		}
		mu.Unlock()

		// A batch that fails fails each of its calls; the next goes alone.
		go call(11)
		synctest.Wait()
		go call(12)
		go call(13)
		synctest.Wait()
		down := errors.New("connection refused")
		release <- down
		release <- down
		failed := map[string]bool{}
		for range 3 {
			failed[<-replies] = true
		}
		for _, i := range []int{11, 12, 13} {
			if want := fmt.Sprintf("%d: connection refused", i); !failed[want] {
				t.Errorf("no %q among %v", want, failed)
			}
		}
		go call(14)
		synctest.Wait()
		release <- nil
		if got := <-replies; got != "14: reply to 14" {
			t.Fatalf("after a failed batch: %q", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(sizes) != "[1 10 1 2 1]" {
			t.Errorf("batches of %v, want [1 10 1 2 1]", sizes)
		}
	})
}

// TestRedisBatch runs batches on a real server: three scripts in one round
// trip, and a script the server does not hold (after SCRIPT FLUSH, or a
// restart) sent again as EVAL within the batch, each call with its reply.
func TestRedisBatch(t *testing.T) {
	r := newTestRedis(t, clock.Real{})
	trips := &storagetest.RedisTrips{}
	r.Client().AddHook(trips)
	ctx := context.Background()
	// A script of its own, which no other test has loaded.
	script := redis.NewScript("-- " + t.Name() + rand.Text() + "\nreturn ARGV[1]")
	batch := func(n int) []*scriptCall {
		calls := make([]*scriptCall, n)
		for i := range calls {
			calls[i] = &scriptCall{ctx: ctx, script: script, args: []any{fmt.Sprint("call ", i)}}
		}
		return calls
	}
	check := func(what string, calls []*scriptCall, wantTrips int64) {
		t.Helper()
		before := trips.Scripted.Load()
		r.sendBatch(ctx, calls)
		if got := trips.Scripted.Load() - before; got != wantTrips {
			t.Errorf("%s: %d round trips, want %d", what, got, wantTrips)
		}
		for i, c := range calls {
			if v, err := c.cmd.Text(); err != nil || v != fmt.Sprint("call ", i) {
				t.Errorf("%s: call %d got %q, %v", what, i, v, err)
			}
		}
	}
	check("not loaded", batch(3), 2) // EVALSHA, NOSCRIPT, then EVAL
	check("loaded", batch(3), 1)
	check("alone", batch(1), 1)
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	check("flushed", batch(3), 2)
}

// TestRedisBatchJoinsPlans sends plans of one batch as one script, and
// checks that each gets the outcome it would alone, in order: three counts
// of one counter of limit 2 are 1, 2 and a refusal; a script that is not a
// plan goes beside them; all in one round trip.
func TestRedisBatchJoinsPlans(t *testing.T) {
	r := newTestRedis(t, clock.Real{})
	trips := &storagetest.RedisTrips{}
	r.Client().AddHook(trips)
	ctx := context.Background()
	count := recovery.Plan{Counts: []recovery.Count{{Scope: limiter.ScopeStartPhone, Key: "phone-" + rand.Text(), Rate: ulimiter.Rate{Limit: 2, Period: time.Hour}}}}
	other := redis.NewScript("return 'not a plan'")
	if err := other.Load(ctx, r.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := planScript.Load(ctx, r.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := plansScript.Load(ctx, r.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	e, err := r.learnEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var batch []*scriptCall
	for i := range 4 {
		if i == 1 {
			batch = append(batch, &scriptCall{ctx: ctx, script: other})
			continue
		}
		keys, args, err := r.planArgs(&count, e)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &scriptCall{ctx: ctx, script: planScript, keys: keys, args: args})
	}
	before, scripts := trips.Scripted.Load(), trips.Scripts.Load()
	r.sendBatch(ctx, batch)
	if n := trips.Scripted.Load() - before; n != 1 {
		t.Errorf("%d round trips for a batch of three plans and a script, want 1", n)
	}
	if n := trips.Scripts.Load() - scripts; n != 2 {
		t.Errorf("%d scripts sent for three plans and a script, want 2: the plans joined", n)
	}
	if v, err := batch[1].cmd.Text(); err != nil || v != "not a plan" {
		t.Errorf("the other script: %q, %v", v, err)
	}
	var got []string
	for _, c := range []*scriptCall{batch[0], batch[2], batch[3]} {
		res, err := c.cmd.Slice()
		if err != nil {
			t.Fatal(err)
		}
		o, err := decodeOutcome(res[:11], count.Counts)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d/%d/%v", o.Refused, o.Counter.Remaining, o.Counter.Reached))
	}
	// Counts of a counter that did not refuse leave o.Counter empty.
	if want := fmt.Sprintf("[%d/0/false %d/0/false %d/0/true]", recovery.StepNone, recovery.StepNone, recovery.StepCount); fmt.Sprint(got) != want {
		t.Errorf("outcomes %v, want %s", got, want)
	}
}
