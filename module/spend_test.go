package module

import (
	"reflect"
	"strings"
	"testing"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// loadBlock reads lines into a gateway block and validates it.
func loadBlock(t *testing.T, lines string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(cf.NewTestDispenser(strings.Replace(valuesCaddyfile, "%s", lines, 1)))
	if err == nil {
		h.fillDefaults()
		err = h.Validate()
	}
	return h, err
}

func TestSpendAndShareLoad(t *testing.T) {
	t.Parallel()
	h, err := loadBlock(t, `limit sms_global 1000 1h
	sms_share network 10% country 40%
	sms_spend {
		currency EUR
		price NL 0.075 de 0.08
		price US 0.01
		default_price 0.25
		daily 50
		monthly 500.5
	}`)
	if err != nil {
		t.Fatal(err)
	}
	c := h.limits()
	want := limiter.Spend{Prices: map[string]limiter.Micros{"NL": 75_000, "DE": 80_000, "US": 10_000},
		DefaultPrice: 250_000, Daily: 50_000_000, Monthly: 500_500_000}
	if !reflect.DeepEqual(c.Spend, want) || c.Shares != (limiter.Shares{Network: 10, Country: 40}) {
		t.Fatalf("limits: %+v, %+v; want %+v", c.Shares, c.Spend, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the limits do not validate: %v", err)
	}
	if got, want := limitsSummary(c), "sms_share network 10%, country 40%; sms_spend daily 50, monthly 500.5;"; !strings.Contains(got, want) {
		t.Fatalf("limits line %q; want it to hold %q", got, want)
	}
}

// The network share is on unless written off; the country share and the
// ceilings are off unless written.
func TestShareDefaults(t *testing.T) {
	t.Parallel()
	for lines, want := range map[string]limiter.Shares{
		"":                       {Network: 10},
		"sms_share country 40%":  {Network: 10, Country: 40},
		"sms_share network 100%": {Network: 100},
		"sms_share network 25%":  {Network: 25},
	} {
		h, err := loadBlock(t, lines)
		if err != nil {
			t.Fatalf("%q: %v", lines, err)
		}
		if c := h.limits(); c.Shares != want || c.Spend.Daily != 0 || c.Spend.Monthly != 0 {
			t.Errorf("%q: shares %+v, spend %+v; want %+v and no ceiling", lines, c.Shares, c.Spend, want)
		}
	}
}

func TestSpendAndShareRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ lines, want string }{
		{"sms_share network 150%", "sms_network: share must be a percentage from 1 to 100, got 150"},
		{"sms_share network ten", "sms_share network: 'ten' is not a percentage"},
		{"sms_share network 0%", "sms_share network: '0%' is not a percentage from 1% to 100%"},
		{"sms_share asn 10%", "unknown share 'asn'"},
		{"sms_spend {\n\tdaily 10\n\t}", "a ceiling needs prices"},
		{"sms_spend {\n\tdefault_price 0.1\n\t}", "set daily, monthly or both"},
		{"sms_spend {\n\tprice XX 0.1\n\tdaily 1\n\t}", `price: unknown country "XX"`},
		{"sms_spend {\n\tprice NL 0.0000001\n\tdaily 1\n\t}", "more than six decimals"},
		{"sms_spend {\n\tprice NL -1\n\tdaily 1\n\t}", `"-1" is not an amount`},
		{"sms_spend {\n\tdefault_price 1e3\n\tdaily 1\n\t}", `"1e3" is not an amount`},
		{"sms_spend {\n\tprice NL\n\t}", "want <country> <amount> pairs"},
		{"sms_spend {\n\tbudget 1\n\t}", "unknown subdirective 'budget'"},
	} {
		if _, err := loadBlock(t, c.lines); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error containing %q", c.lines, err, c.want)
		}
	}
}
