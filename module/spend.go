package module

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/nyaruka/phonenumbers"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// SMSSpend prices codes per destination country and caps what they cost
// per UTC day and month. Amounts are decimal strings in Currency, such as
// "0.075": at most six decimals.
type SMSSpend struct {
	// Currency names the unit of the amounts, for logs and metrics only.
	Currency string `json:"currency,omitempty"`
	// Prices holds the price of one SMS per ISO 3166 alpha-2 country.
	Prices map[string]string `json:"prices,omitempty"`
	// DefaultPrice is the price of an SMS to any other country.
	DefaultPrice string `json:"default_price,omitempty"`
	// Daily and Monthly are the ceilings; empty: none.
	Daily   string `json:"daily,omitempty"`
	Monthly string `json:"monthly,omitempty"`
}

// SMSShare divides the sms_global budget: one client network (an IPv4
// /24, an IPv6 /48) and the numbers of one country may take at most these
// percentages of it in each of its windows, 1 to 100; 100 leaves it
// undivided. Unset, Network is 10 and Country 100.
type SMSShare struct {
	Network int `json:"network,omitempty"`
	Country int `json:"country,omitempty"`
}

// parseSpend parses
//
//	sms_spend {
//	    currency      EUR
//	    price         <country> <amount> [<country> <amount> ...]
//	    default_price <amount>
//	    daily         <amount>
//	    monthly       <amount>
//	}
func parseSpend(d *cf.Dispenser) (*SMSSpend, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	s := &SMSSpend{}
	for d.NextBlock(1) {
		name := d.Val()
		args := d.RemainingArgs()
		switch name {
		case "currency", "default_price", "daily", "monthly":
			if len(args) != 1 {
				return nil, d.Errf("sms_spend %s: want one value", name)
			}
			*map[string]*string{"currency": &s.Currency, "default_price": &s.DefaultPrice, "daily": &s.Daily, "monthly": &s.Monthly}[name] = args[0]
		case "price":
			if len(args) == 0 || len(args)%2 != 0 {
				return nil, d.Errf("sms_spend price: want <country> <amount> pairs")
			}
			if s.Prices == nil {
				s.Prices = map[string]string{}
			}
			for i := 0; i < len(args); i += 2 {
				s.Prices[strings.ToUpper(args[i])] = args[i+1]
			}
		default:
			return nil, d.Errf("sms_spend: unknown subdirective '%s' (want currency, price, default_price, daily or monthly)", name)
		}
	}
	return s, nil
}

// parseShare parses sms_share [network <percent>%] [country <percent>%].
func parseShare(d *cf.Dispenser) (*SMSShare, error) {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args)%2 != 0 {
		return nil, d.Errf("sms_share: want network <percent>%% and/or country <percent>%%")
	}
	s := &SMSShare{}
	for i := 0; i < len(args); i += 2 {
		n, err := strconv.Atoi(strings.TrimSuffix(args[i+1], "%"))
		if err != nil || n < 1 {
			return nil, d.Errf("sms_share %s: '%s' is not a percentage from 1%% to 100%% (100%% leaves it undivided)", args[i], args[i+1])
		}
		switch args[i] {
		case "network":
			s.Network = n
		case "country":
			s.Country = n
		default:
			return nil, d.Errf("sms_share: unknown share '%s' (want network or country)", args[i])
		}
	}
	return s, nil
}

// budget is the configured division of sms_global and the spend ceilings,
// and every value that cannot work.
func (h *Handler) budget() (limiter.Shares, limiter.Spend, error) {
	shares := limiter.DefaultConfig().Shares
	if s := h.SMSShare; s != nil {
		shares.Country = s.Country
		if s.Network != 0 {
			shares.Network = s.Network
		}
	}
	s := h.SMSSpend
	if s == nil {
		return shares, limiter.Spend{}, nil
	}
	var errs []error
	amount := func(field, v string) limiter.Micros {
		if v == "" {
			return 0
		}
		m, err := micros(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("sms_spend: %s: %w", field, err))
		}
		return m
	}
	spend := limiter.Spend{Prices: map[string]limiter.Micros{}, DefaultPrice: amount("default_price", s.DefaultPrice),
		Daily: amount("daily", s.Daily), Monthly: amount("monthly", s.Monthly)}
	supported := phonenumbers.GetSupportedRegions()
	for _, cc := range slices.Sorted(maps.Keys(s.Prices)) {
		if !supported[cc] {
			errs = append(errs, fmt.Errorf("sms_spend: price: unknown country %q (want an ISO 3166 alpha-2 code such as NL)", cc))
		}
		spend.Prices[cc] = amount("price "+cc, s.Prices[cc])
	}
	if spend.Daily == 0 && spend.Monthly == 0 {
		errs = append(errs, errors.New("sms_spend: set daily, monthly or both"))
	}
	return shares, spend, errors.Join(errs...)
}

// validateBudget checks sms_spend and sms_share.
func (h *Handler) validateBudget() error {
	shares, spend, err := h.budget()
	c := limiter.DefaultConfig()
	c.Shares, c.Spend = shares, spend
	return errors.Join(err, c.Validate())
}

// sharesSummary is the shares of sms_global for the limits line.
func sharesSummary(s limiter.Shares) string {
	pct := func(n int) string {
		if n <= 0 || n >= 100 {
			return "undivided"
		}
		return strconv.Itoa(n) + "%"
	}
	return "sms_share network " + pct(s.Network) + ", country " + pct(s.Country)
}

// spendSummary is the spend ceilings for the limits line.
func spendSummary(s limiter.Spend) string {
	if s.Daily <= 0 && s.Monthly <= 0 {
		return "sms_spend off"
	}
	amount := func(m limiter.Micros) string {
		if m <= 0 {
			return "none"
		}
		return strings.TrimSuffix(strings.TrimRight(big.NewRat(m, 1_000_000).FloatString(6), "0"), ".")
	}
	return "sms_spend daily " + amount(s.Daily) + ", monthly " + amount(s.Monthly)
}

// micros reads a decimal amount, such as "0.075", in millionths.
func micros(v string) (limiter.Micros, error) {
	r, ok := new(big.Rat).SetString(v)
	if !ok || r.Sign() < 0 || strings.ContainsAny(v, "eE/") {
		return 0, fmt.Errorf("%q is not an amount such as 0.075", v)
	}
	r.Mul(r, big.NewRat(1_000_000, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q has more than six decimals or is too large", v)
	}
	return r.Num().Int64(), nil
}
