package redisnonce_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig/redisnonce"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

// t0 is the verifiers' clock in these tests, far from the server's: the
// store must take times to live from the caller's clock, not Redis's.
var t0 = time.Unix(1767225600, 0)

func TestClaim(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	s := redisnonce.New(c, redistest.Prefix(t, c))
	until := t0.Add(2 * time.Minute)
	claims := []struct {
		keyID, nonce string
		want         bool
	}{
		{"gw1", "a", true},
		{"gw1", "a", false},
		{"gw1", "b", true},
		{"gw2", "a", true},
		// Key IDs may hold ":": key and nonce must not run together.
		{"gw:1", "a", true},
		{"gw", "1:a", true},
		{"gw%3A1", "a", true},
		{"gw:1", "a", false},
		{"gw", "1:a", false},
	}
	for i, cl := range claims {
		got, err := s.Claim(t.Context(), cl.keyID, cl.nonce, until, t0)
		if err != nil || got != cl.want {
			t.Errorf("claim %d (%s %s) = %v, %v; want %v", i, cl.keyID, cl.nonce, got, err, cl.want)
		}
	}
}

// TestClaimTimeToLive: a key lives until the window the caller's clock
// judged closes, and ClockMargin more, however far that clock is from the
// server's; and nothing the store writes lives forever.
func TestClaimTimeToLive(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	s := redisnonce.New(c, redistest.Prefix(t, c))
	for _, tt := range []struct {
		name       string
		until, now time.Time
		want       time.Duration
	}{
		{"clock far behind the server's", t0.Add(90 * time.Second), t0, 90*time.Second + redisnonce.ClockMargin},
		{"clock far ahead of it", time.Now().Add(10 * 365 * 24 * time.Hour).Add(time.Second), time.Now().Add(10 * 365 * 24 * time.Hour), time.Second + redisnonce.ClockMargin},
		{"window already closed", t0, t0.Add(time.Second), redisnonce.ClockMargin},
	} {
		nonce := tt.name
		if ok, err := s.Claim(t.Context(), "gw1", nonce, tt.until, tt.now); !ok || err != nil {
			t.Fatalf("%s: claim = %v, %v", tt.name, ok, err)
		}
		ttl, err := c.PTTL(t.Context(), s.Key("gw1", nonce)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl > tt.want || ttl < tt.want-5*time.Second {
			t.Errorf("%s: time to live %v, want %v", tt.name, ttl, tt.want)
		}
	}
}

// TestClaimConcurrent: two verifier instances, each with a client of its
// own, claim one nonce many times at once: exactly one claim wins.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	other := redistest.Client(t)
	stores := []*redisnonce.Store{redisnonce.New(c, prefix), redisnonce.New(other, prefix)}
	for round := range 20 {
		var (
			wg    sync.WaitGroup
			won   atomic.Int32
			start = make(chan struct{})
		)
		for i := range 16 {
			wg.Go(func() {
				<-start
				ok, err := stores[i%2].Claim(context.Background(), "gw1", "race", t0.Add(time.Minute), t0)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d of 16 concurrent claims won, want 1", round, n)
		}
		if err := c.Del(t.Context(), stores[0].Key("gw1", "race")).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// resendHook sends the first SET twice, as the client does when a reply is
// lost on the way back and it retries: the retry finds the key the first
// send wrote.
type resendHook struct{ sent atomic.Bool }

func (h *resendHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *resendHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *resendHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "set" && h.sent.CompareAndSwap(false, true) {
			if err := next(ctx, cmd); err != nil {
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestClaimRetriedSet: a claim whose SET went through twice is still the
// claim that won, and the nonce is still claimed for everyone else.
func TestClaimRetriedSet(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	resending := redistest.Client(t)
	hook := &resendHook{}
	resending.AddHook(hook)
	if ok, err := redisnonce.New(resending, prefix).Claim(t.Context(), "gw1", "n", t0.Add(time.Minute), t0); !ok || err != nil {
		t.Fatalf("claim whose SET was sent twice = %v, %v; want true", ok, err)
	}
	if !hook.sent.Load() {
		t.Fatal("the hook did not resend the SET")
	}
	if ok, err := redisnonce.New(c, prefix).Claim(t.Context(), "gw1", "n", t0.Add(time.Minute), t0); ok || err != nil {
		t.Errorf("replay = %v, %v; want false", ok, err)
	}
}

// TestClaimServerDown: with no server to ask, Claim fails: it never
// reports a nonce as new.
func TestClaimServerDown(t *testing.T) {
	t.Parallel()
	addr := freeport.ClosedAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	ok, err := redisnonce.New(c, "").Claim(t.Context(), "gw1", "n", t0.Add(time.Minute), t0)
	if ok || err == nil {
		t.Fatalf("Claim = %v, %v; want an error", ok, err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not carry the dial error", err)
	}
}

func TestNewDefaultPrefix(t *testing.T) {
	t.Parallel()
	s := redisnonce.New(nil, "")
	if got, want := s.Key("gw:1", "bm9uY2U"), "smsrec:nonce:gw%3A1:bm9uY2U"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}
