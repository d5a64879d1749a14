package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

// spendGuard is a guard over a memory store at start whose limits are
// high but for the spend ceilings: codes cost 0.10 (NL 0.05).
func spendGuard(t *testing.T, start time.Time, daily, monthly limiter.Micros) (*limiter.Guard, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(start)
	store, err := memory.New(10_000, clk)
	if err != nil {
		t.Fatal(err)
	}
	c := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 30, Window: time.Hour}
	c.StartIP, c.StartAccount, c.StartPhone, c.SMSGlobal = high, high, high, high
	c.Spend = limiter.Spend{Prices: map[string]limiter.Micros{"NL": 50_000}, DefaultPrice: 100_000, Daily: daily, Monthly: monthly}
	g, err := limiter.New(c, store, clk)
	if err != nil {
		t.Fatal(err)
	}
	return g, clk
}

var spendSeq int

// Destination prefixes of the countries the spend tests price.
const (
	prefixNL = "+316123"
	prefixDE = "+491511"
)

// code starts a flow for a number under prefix and reports the refusal of
// the start, or of its code.
func code(g *limiter.Guard, clk *clock.Manual, prefix string) error {
	spendSeq++
	now := clk.Now()
	f := recovery.Flow{ID: fmt.Sprint("f", spendSeq), Account: fmt.Sprint("a", spendSeq), Prefix: prefix,
		SentAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute), ClientIP: fmt.Sprintf("10.0.%d.1", spendSeq%250)}
	sms, err := g.StartFlow(context.Background(), f.ClientIP, f, "phone:"+f.Account)
	return errors.Join(err, sms)
}

func denialOf(err error) *recovery.Denial {
	var d *recovery.Denial
	errors.As(err, &d)
	return d
}

func TestSpendDayEndsAtMidnight(t *testing.T) {
	g, clk := spendGuard(t, time.Date(2026, 3, 9, 23, 0, 0, 0, time.UTC), 300_000, 0)
	for i := range 3 { // 0.30 of 0.30
		if err := code(g, clk, prefixDE); err != nil {
			t.Fatalf("code %d within the day's ceiling: %v", i, err)
		}
	}
	if d := denialOf(code(g, clk, prefixNL)); d == nil || d.Scope != limiter.ScopeSpendDay || d.RetryAfter != time.Hour {
		t.Fatalf("a start at the day's ceiling: %+v; want refused until midnight (1h)", d)
	}
	clk.Advance(59 * time.Minute)
	if err := code(g, clk, prefixNL); denialOf(err) == nil {
		t.Fatalf("a start a minute before midnight passed")
	}
	clk.Advance(time.Minute)
	if err := code(g, clk, prefixNL); err != nil {
		t.Fatalf("the first code of a new day: %v", err)
	}
}

func TestSpendMonthOutlastsDays(t *testing.T) {
	g, clk := spendGuard(t, time.Date(2026, 2, 27, 12, 0, 0, 0, time.UTC), 1_000_000, 250_000)
	for i := range 5 { // 0.20 on the 27th, 0.05 on the 28th
		if i == 4 {
			clk.Advance(24 * time.Hour)
		}
		if err := code(g, clk, prefixNL); err != nil {
			t.Fatalf("code %d within the month's ceiling: %v", i, err)
		}
	}
	for i := range 2 { // the code over it, then the start after it
		if d := denialOf(code(g, clk, prefixNL)); d == nil || d.Scope != limiter.ScopeSpendMonth || d.Reset.Before(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%d: a start in the month of a spent ceiling: %+v; want refused until March", i, d)
		}
	}
	clk.Set(time.Date(2026, 3, 1, 0, 0, 1, 0, time.UTC))
	if err := code(g, clk, prefixNL); err != nil {
		t.Fatalf("the first code of a new month: %v", err)
	}
}

func TestBudgetValidate(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*limiter.Config){
		"share over 100":     func(c *limiter.Config) { c.Shares.Network = 101 },
		"negative share":     func(c *limiter.Config) { c.Shares.Country = -1 },
		"ceiling, no prices": func(c *limiter.Config) { c.Spend.Daily = 100 },
		"negative price":     func(c *limiter.Config) { c.Spend.Prices = map[string]limiter.Micros{"NL": -1} },
		"negative ceiling":   func(c *limiter.Config) { c.Spend.Monthly = -1 },
	} {
		c := limiter.DefaultConfig()
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.7":            "198.51.100.0/24",
		"198.51.100.7:443":        "198.51.100.0/24",
		"::ffff:198.51.100.7":     "198.51.100.0/24",
		"2001:db8:1:2:3::4":       "2001:db8:1::/48",
		"2001:db8:1:2::/64":       "2001:db8:1::/48",
		"[2001:db8:1:2::9%1]:443": "2001:db8:1::/48",
		"not an address":          "not an address",
	} {
		if got := limiter.Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}

// A notice counts at its country's price against the ceilings, and a
// notice over a ceiling is dropped like a code, which spends the ceiling.
func TestSpendCountsNotices(t *testing.T) {
	t.Parallel()
	g, clk := spendGuard(t, time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC), 150_000, 0)
	ctx := context.Background()
	for i := range 2 { // 0.05 each, to 0.10 of 0.15
		if err := g.SMS(ctx, fmt.Sprint("phone:n", i), prefixNL); err != nil {
			t.Fatalf("notice %d within the day's ceiling: %v", i, err)
		}
	}
	if err := code(g, clk, prefixNL); err != nil {
		t.Fatalf("a code of 0.05 in the 0.05 the notices left: %v", err)
	}
	if d := denialOf(g.SMS(ctx, "phone:n2", prefixNL)); d == nil || d.Scope != limiter.ScopeSpendDay {
		t.Fatalf("a notice over the day's ceiling: %+v; want dropped by %s", d, limiter.ScopeSpendDay)
	}
	if d := denialOf(code(g, clk, prefixNL)); d == nil || d.Scope != limiter.ScopeSpendDay {
		t.Fatalf("a start after notices and a code spent the ceiling: %+v; want refused", d)
	}
}
