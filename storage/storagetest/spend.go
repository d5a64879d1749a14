package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Destination prefixes of the countries the spend tests price.
const (
	prefixNL = "+316123"
	prefixDE = "+491511"
	prefixXK = "+38344"
)

// startTo is a start of a new flow for account from ip, its code to a
// number under prefix; it returns the start's refusal and the code's.
func startTo(ctx context.Context, g *limiter.Guard, clk Clock, ip, account, prefix string, decoy bool) (start, sms error) {
	f := newFlow("flow-"+account+"-"+ip, clk, 100*time.Second)
	f.Account, f.ClientIP, f.Prefix, f.Decoy = account, ip, prefix, decoy
	sms, start = g.StartFlow(ctx, ip, f, "phone:"+account)
	return start, sms
}

// runSpend checks the weighted counts of the spend ceilings and the shares
// of the SMS budget, through a limiter.Guard.
func runSpend(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("WeightedCounts", func(t *testing.T) {
		t.Parallel()
		_, s, _ := newPlanGuard(t, h, nil)
		ps := s.(recovery.Store)
		rate := ulimiter.Rate{Limit: 1000, Period: 1000 * h.Unit}
		run := func(n int64, peek bool) recovery.Outcome {
			t.Helper()
			c := recovery.Count{Scope: limiter.ScopeSpendDay, Key: "weighted", Rate: rate, N: n, Peek: peek}
			o, err := ps.RunPlan(ctx, &recovery.Plan{Counts: []recovery.Count{c}})
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		for i, n := range []int64{300, 300, 300, 100} {
			if o := run(n, false); o.Refused != recovery.StepNone {
				t.Fatalf("count %d of %d, within the limit, refused: %+v", i, n, o)
			}
		}
		if o := run(0, true); o.Refused != recovery.StepCount {
			t.Fatalf("peek of a counter at its limit passed: %+v", o)
		}
		if o := run(1, false); o.Refused != recovery.StepCount || o.Counter.Remaining != 0 {
			t.Fatalf("a count past the limit: %+v, want refused", o)
		}
		if got, err := ps.Peek(ctx, limiter.ScopeSpendDay+":weighted", rate); err != nil || !got.Reached {
			t.Fatalf("the counter after 1001 events of 1000: %+v, %v", got, err)
		}
	})

	t.Run("CeilingDropsCodesAlike", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.Spend = limiter.Spend{Prices: map[string]limiter.Micros{"NL": 80_000}, DefaultPrice: 100_000, Daily: 200_000}
		})
		for i := range 2 { // 0.08 and 0.16 of 0.20
			if start, sms := startTo(ctx, g, clk, "192.0.2.1", fmt.Sprint("a", i), prefixNL, false); start != nil || sms != nil {
				t.Fatalf("code %d within the ceiling: %v, %v", i, start, sms)
			}
		}
		// A decoy peeks (0.04 left): its start looks like the real one's.
		if start, sms := startTo(ctx, g, clk, "192.0.2.2", "decoy", prefixNL, true); start != nil || sms != nil {
			t.Fatalf("a decoy start at the ceiling: %v, %v", start, sms)
		}
		start, sms := startTo(ctx, g, clk, "192.0.2.3", "a2", prefixNL, false)
		if start != nil || scopeOf(sms) != limiter.ScopeSpendDay {
			t.Fatalf("the code over the ceiling: start %v, code %v; want the start, no code", start, sms)
		}
		// Spent: every start is now refused alike, whatever its account.
		for _, decoy := range []bool{false, true} {
			start, sms := startTo(ctx, g, clk, "192.0.2.4", fmt.Sprint("late-", decoy), prefixDE, decoy)
			if scopeOf(start) != limiter.ScopeSpendDay || sms != nil {
				t.Fatalf("a start (decoy %v) after the ceiling: %v, %v; want refused", decoy, start, sms)
			}
			var d *recovery.Denial
			if !errors.As(start, &d) || d.Limit != 0 {
				t.Fatalf("a refusal for money tells a sum: %+v", d)
			}
		}
	})

	t.Run("PrefixFloodSpendsItsShare", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.SMSGlobal.Events = 20
			c.Shares = limiter.Shares{Network: 10} // 2 codes per network
		})
		flood := func(format string) int {
			codes := 0
			for i := range 30 {
				start, sms := startTo(ctx, g, clk, fmt.Sprintf(format, i), fmt.Sprint("victim", i), prefixNL, false)
				switch {
				case start == nil && sms == nil:
					codes++
				case scopeOf(start) != limiter.ScopeSMSNetwork:
					t.Fatalf("start %d of a flood: %v, %v; want codes or the network's share spent", i, start, sms)
				}
			}
			return codes
		}
		if got := flood("198.51.100.%d"); got != 2 {
			t.Fatalf("a flood from one /24 got %d codes, want its share of 2", got)
		}
		if got := flood("2001:db8:7:%x::1"); got != 2 {
			t.Fatalf("a flood from the /64s of one /48 got %d codes, want its share of 2", got)
		}
		if start, sms := startTo(ctx, g, clk, "203.0.113.7", "person", prefixNL, false); start != nil || sms != nil {
			t.Fatalf("a person from another network after the floods: %v, %v; want a code", start, sms)
		}
	})

	t.Run("CountryFloodLeavesOthers", func(t *testing.T) {
		t.Parallel()
		g, _, clk := newPlanGuard(t, h, func(c *limiter.Config) {
			c.SMSGlobal.Events = 10
			c.Shares = limiter.Shares{Country: 50} // 5 codes per country
		})
		for i := range 20 {
			start, sms := startTo(ctx, g, clk, fmt.Sprintf("198.51.%d.1", i), fmt.Sprint("pumped", i), prefixXK, false)
			if start != nil || (i < 5) != (sms == nil) || (i >= 5 && scopeOf(sms) != limiter.ScopeSMSCountry) {
				t.Fatalf("start %d to one country: %v, %v; want 5 codes and then the start without one", i, start, sms)
			}
		}
		for i := range 5 {
			if start, sms := startTo(ctx, g, clk, fmt.Sprintf("203.0.113.%d", i), fmt.Sprint("person", i), prefixNL, false); start != nil || sms != nil {
				t.Fatalf("person %d of another country after the flood: %v, %v; want a code", i, start, sms)
			}
		}
	})
}
