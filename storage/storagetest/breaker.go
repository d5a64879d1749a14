package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Prefixes of the breaker's tests: one pumped, one whose codes are mostly
// entered, and one of a few ordinary codes.
const (
	pumpedPrefix = "+447400"
	normalPrefix = "+447401"
	otherPrefix  = "+316123"
)

// breakerGuard is a guard whose limits are out of reach but for the
// breaker's defaults, over a store open makes on a manual clock.
type breakerGuard struct {
	*limiter.Guard
	t     *testing.T
	store recovery.Store
	clock *clock.Manual
	cfg   limiter.Breaker
	n     int // flows started
}

func newBreakerGuard(t *testing.T, open func(testing.TB, recovery.Clock) Store) *breakerGuard {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	s := open(t, clk)
	cfg := planConfig(time.Hour, func(c *limiter.Config) { c.Breaker = limiter.DefaultBreaker() })
	g, err := limiter.New(cfg, s, clk)
	if err != nil {
		t.Fatal(err)
	}
	return &breakerGuard{Guard: g, t: t, store: s, clock: clk, cfg: cfg.Breaker}
}

// start starts a flow of a new account whose phone is under prefix, one
// second after the one before, and returns it and the refusal of its code.
func (g *breakerGuard) start(prefix string, decoy bool) (recovery.Flow, error) {
	g.t.Helper()
	g.n++
	g.clock.Advance(time.Second)
	now := g.clock.Now().UTC().Truncate(time.Millisecond)
	f := recovery.Flow{
		ID: fmt.Sprintf("flow-%d", g.n), Account: fmt.Sprintf("user%d@example.com", g.n), CodeHash: []byte("h"),
		Sends: 1, SentAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		ClientIP: fmt.Sprintf("198.51.100.%d", g.n%250), Prefix: prefix, Decoy: decoy,
	}
	sms, err := g.StartFlow(context.Background(), f.ClientIP, f, fmt.Sprintf("phone-%d", g.n))
	if err != nil {
		g.t.Fatalf("start %d under %s: %v", g.n, prefix, err)
	}
	return f, sms
}

// enter verifies the code of f as right, as the flow does.
func (g *breakerGuard) enter(f recovery.Flow) {
	g.t.Helper()
	ctx := context.Background()
	if _, _, err := g.Verify(ctx, f.ClientIP, f.ID, 5); err != nil {
		g.t.Fatalf("verify %s: %v", f.ID, err)
	}
	tok := recovery.Token{Hash: []byte("token-" + f.ID), Account: f.Account, FlowID: f.ID, ExpiresAt: g.clock.Now().Add(time.Hour)}
	if won, err := g.Right(ctx, f.ClientIP, f, tok); err != nil || !won {
		g.t.Fatalf("right code for %s: %v, %v", f.ID, won, err)
	}
}

// pump starts n flows under pumpedPrefix, none entered, with a flow under
// normalPrefix (three in five entered) after each, and one under
// otherPrefix after every fortieth. Every code outside the pumped prefix
// must go out. It returns the codes of the pumped prefix that went out,
// when the first refusal of one came, and that refusal, or nil.
func (g *breakerGuard) pump(n int) (sent int, at time.Time, first error) {
	g.t.Helper()
	for i := range n {
		_, sms := g.start(pumpedPrefix, false)
		switch {
		case sms == nil:
			sent++
		case first == nil:
			first, at = sms, g.clock.Now()
		}
		f, sms := g.start(normalPrefix, false)
		if sms != nil {
			g.t.Fatalf("a code of the prefix whose codes are entered was refused: %v", sms)
		}
		if i%5 < 3 {
			g.enter(f)
		}
		if i%40 == 0 {
			if _, sms := g.start(otherPrefix, false); sms != nil {
				g.t.Fatalf("a code of another prefix was refused: %v", sms)
			}
		}
	}
	return sent, at, first
}

// wantBlock checks that err is the refusal of a block of the pumped
// prefix that the code set at at, lasting d (0: until support lifts it),
// the store's blocks-th in a row, and that the store lists it so.
func (g *breakerGuard) wantBlock(err error, at time.Time, d time.Duration, blocks int64) {
	g.t.Helper()
	var den *recovery.Denial
	if !errors.As(err, &den) || !errors.Is(err, recovery.ErrPrefixBlocked) || den.Scope != limiter.ScopeBreaker || !den.Set {
		g.t.Fatalf("refusal %v, want a block of the prefix set by this code", err)
	}
	if den.Permanent != (d == 0) || (d > 0 && den.RetryAfter != d) {
		g.t.Fatalf("block: retry after %s, permanent %v; want %s", den.RetryAfter, den.Permanent, d)
	}
	locks, lerr := g.Locks(context.Background(), recovery.KindPrefix)
	if lerr != nil || len(locks) != 1 {
		g.t.Fatalf("prefix blocks listed: %+v, %v; want the pumped prefix only", locks, lerr)
	}
	l := locks[0]
	if l.Key != pumpedPrefix || l.Permanent != (d == 0) || l.Strikes != blocks || l.Reason != recovery.ReasonLowConversion || l.Country != "GB" {
		g.t.Fatalf("listed %+v, want block %d of %s, permanent %v", l, blocks, pumpedPrefix, d == 0)
	}
	if d > 0 && !l.Until.Equal(at.Add(d)) {
		g.t.Fatalf("listed until %s, want %s", l.Until, at.Add(d))
	}
}

// Breaker checks the conversion breaker on the store open makes: the
// pumping of one prefix, many thousands of codes none of which is entered,
// gets it blocked after exactly MinSent-1 codes a window, for 1h, then for
// 24h, then until support lifts the block; codes under other prefixes, and
// under a prefix as busy whose codes are mostly entered, all go out. A
// store's records live on its clock, which the test moves: the store must
// read its time from it.
func Breaker(t *testing.T, open func(testing.TB, recovery.Clock) Store) {
	t.Run("Pumping", func(t *testing.T) {
		t.Parallel()
		g := newBreakerGuard(t, open)
		k := int(g.cfg.MinSent - 1) // the codes a window lets through
		for block, d := range []time.Duration{g.cfg.Block, g.cfg.LaterBlock, 0} {
			sent, at, first := g.pump(k + 500)
			if sent != k {
				t.Fatalf("block %d: %d codes went out, want %d", block+1, sent, k)
			}
			g.wantBlock(first, at, d, int64(block+1))
			g.clock.Set(at.Add(d)) // the block ends
		}
		// Held: a month later it is still blocked.
		g.clock.Advance(30 * 24 * time.Hour)
		if sent, _, _ := g.pump(300); sent != 0 {
			t.Fatalf("%d codes went out under a prefix held until support lifts it", sent)
		}
		if lifted, err := g.Lift(context.Background(), recovery.KindPrefix, pumpedPrefix); err != nil || !lifted {
			t.Fatalf("Lift: %v, %v", lifted, err)
		}
		// Lifted: a fresh run, whose block is a first one again.
		sent, at, first := g.pump(k + 1)
		if sent != k {
			t.Fatalf("after the lift %d codes went out, want %d", sent, k)
		}
		g.wantBlock(first, at, g.cfg.Block, 1)
	})

	t.Run("DecoysAndNoticesCountNothing", func(t *testing.T) {
		t.Parallel()
		g := newBreakerGuard(t, open)
		ctx := context.Background()
		for range 3 * g.cfg.MinSent {
			if _, sms := g.start(pumpedPrefix, true); sms != nil {
				t.Fatalf("a decoy's code was refused: %v", sms)
			}
			if err := g.SMS(ctx, "notice-phone", pumpedPrefix); err != nil {
				t.Fatalf("a notice was refused: %v", err)
			}
		}
		if sent, _, _ := g.pump(int(g.cfg.MinSent) - 1); sent != int(g.cfg.MinSent)-1 {
			t.Fatalf("decoys or notices counted: %d codes went out, want %d", sent, g.cfg.MinSent-1)
		}
		// The next code trips the block, which refuses notices and decoys
		// alike, and spends no budget on them.
		if _, sms := g.start(pumpedPrefix, false); !errors.Is(sms, recovery.ErrPrefixBlocked) {
			t.Fatalf("code %d: %v, want the block", g.cfg.MinSent, sms)
		}
		if err := g.SMS(ctx, "notice-phone", pumpedPrefix); !errors.Is(err, recovery.ErrPrefixBlocked) {
			t.Fatalf("a notice under a blocked prefix: %v, want the block", err)
		}
		if _, sms := g.start(pumpedPrefix, true); !errors.Is(sms, recovery.ErrPrefixBlocked) {
			t.Fatalf("a decoy under a blocked prefix: %v, want the block as a known account gets", sms)
		}
	})

	t.Run("ResendsCount", func(t *testing.T) {
		t.Parallel()
		g := newBreakerGuard(t, open)
		ctx := context.Background()
		// The start sends the first code; the resends, the rest.
		f, _ := g.start(pumpedPrefix, false)
		for i := int64(1); i < g.cfg.MinSent; i++ {
			g.clock.Advance(time.Minute)
			now := g.clock.Now().UTC().Truncate(time.Millisecond)
			op := recovery.ResendOp{ID: f.ID, CodeHash: []byte("h2"), Now: now, Interval: time.Minute,
				ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 1000, Prefix: pumpedPrefix}
			_, refused, err := g.ResendFlow(ctx, f.ClientIP, op, "phone", false)
			switch {
			case err != nil:
				t.Fatalf("resend %d: %v", i, err)
			case i == g.cfg.MinSent-1:
				g.wantBlock(refused, now, g.cfg.Block, 1)
			case refused != nil:
				t.Fatalf("resend %d refused: %v", i, refused)
			}
		}
	})
}
