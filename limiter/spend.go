package limiter

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Scopes of the shares of the SMS budget and of the spend ceilings.
const (
	// ScopeSMSNetwork is the share of sms_global one client network (an
	// IPv4 /24, an IPv6 /48) may spend.
	ScopeSMSNetwork = "sms_network"
	// ScopeSMSCountry is the share of sms_global the numbers of one
	// destination country may take.
	ScopeSMSCountry = "sms_country"
	// ScopeSpendDay and ScopeSpendMonth are the ceilings on what codes
	// cost in one UTC day and one UTC month.
	ScopeSpendDay   = "sms_spend_day"
	ScopeSpendMonth = "sms_spend_month"
)

// DefaultNetworkShare is the percentage of SMSGlobal one client network
// may spend by default: one network should never spend everyone's budget,
// and it takes ten to spend it all.
const DefaultNetworkShare = 10

// Micros is an amount of money in millionths of its currency.
type Micros = int64

// Shares divide the SMS budget (Config.SMSGlobal): in each of its windows
// one client network may spend at most Network percent of it, and the
// numbers of one country at most Country percent, rounded up. 0 (or 100)
// leaves a share undivided.
type Shares struct {
	Network, Country int
}

// Spend prices each code by its destination country and caps what codes
// cost per UTC day and per UTC month. A zero Spend caps nothing.
type Spend struct {
	// Prices holds the price of one SMS per ISO 3166 alpha-2 country.
	Prices map[string]Micros
	// DefaultPrice is the price of an SMS to any other country.
	DefaultPrice Micros
	// Daily and Monthly are the ceilings; 0: none.
	Daily, Monthly Micros
}

// Price is what one SMS to country costs.
func (s Spend) Price(country string) Micros {
	if p, ok := s.Prices[country]; ok {
		return p
	}
	return s.DefaultPrice
}

// validateBudget reports every share and price that cannot work.
func (c Config) validateBudget() error {
	var errs []error
	for _, s := range []struct {
		scope string
		pct   int
	}{{ScopeSMSNetwork, c.Shares.Network}, {ScopeSMSCountry, c.Shares.Country}} {
		if s.pct < 0 || s.pct > 100 {
			errs = append(errs, fmt.Errorf("%s: share must be a percentage from 1 to 100, got %d", s.scope, s.pct))
		}
	}
	sp := c.Spend
	if sp.Daily < 0 || sp.Monthly < 0 || sp.DefaultPrice < 0 {
		errs = append(errs, fmt.Errorf("sms_spend: amounts must not be negative"))
	}
	for cc, p := range sp.Prices {
		if p < 0 {
			errs = append(errs, fmt.Errorf("sms_spend: price of %s must not be negative", cc))
		}
	}
	if (sp.Daily > 0 || sp.Monthly > 0) && sp.DefaultPrice == 0 && len(sp.Prices) == 0 {
		errs = append(errs, errors.New("sms_spend: a ceiling needs prices (price or default_price)"))
	}
	return errors.Join(errs...)
}

// budget is the division of the SMS budget and the spend ceilings, as a
// Guard counts them in the plans of /start and /resend.
type budget struct {
	network, country limit // shares; a zero rate for none
	spend            Spend
}

func newBudget(c Config) budget {
	share := func(scope string, pct int) limit {
		if pct <= 0 || pct >= 100 {
			return limit{scope: scope}
		}
		n := (c.SMSGlobal.Events*int64(pct) + 99) / 100
		return limit{scope: scope, rate: ulimiter.Rate{Limit: n, Period: c.SMSGlobal.Window}}
	}
	return budget{network: share(ScopeSMSNetwork, c.Shares.Network), country: share(ScopeSMSCountry, c.Shares.Country), spend: c.Spend}
}

// peeks are the hard checks of a start that name no account: the client
// network's share and the ceilings, each refusing once spent, so that a
// start that can get no code is told to come back when it can.
func (b budget) peeks(network string, now time.Time) []recovery.Count {
	var cs []recovery.Count
	if b.network.rate.Limit > 0 {
		cs = append(cs, b.network.count(network, true))
	}
	return append(cs, b.ceilings(now, 0, true)...)
}

// softs count a code softly after its phone's limit: against the client
// network's share (none for "", a message no client asked for), its
// country's share and, at its price, the ceilings. A decoy peeks them. Its
// refusal drops the code, never the flow, and the answer stays the same.
func (b budget) softs(network, country string, decoy bool, now time.Time) []recovery.Count {
	var cs []recovery.Count
	if b.network.rate.Limit > 0 && network != "" {
		cs = append(cs, b.network.soft(network, decoy))
	}
	if b.country.rate.Limit > 0 {
		cs = append(cs, b.country.soft(country, decoy))
	}
	price := b.spend.Price(country)
	if price == 0 {
		return cs // free: nothing to count against the ceilings
	}
	for _, c := range b.ceilings(now, price, decoy) {
		c.Soft = true
		cs = append(cs, c)
	}
	return cs
}

// ceilings are the counters of the day's and the month's spend (UTC),
// counting price, or peeked. Each is keyed by its day or month, and its
// window ends when they do.
func (b budget) ceilings(now time.Time, price Micros, peek bool) []recovery.Count {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var cs []recovery.Count
	for _, c := range []struct {
		scope       string
		ceiling     Micros
		key         string
		start, next time.Time
	}{
		{ScopeSpendDay, b.spend.Daily, day.Format(time.DateOnly), day, day.AddDate(0, 0, 1)},
		{ScopeSpendMonth, b.spend.Monthly, month.Format("2006-01"), month, month.AddDate(0, 1, 0)},
	} {
		if c.ceiling <= 0 {
			continue
		}
		// The window opens at the first code of its day or month and
		// ends with it, rounded up to the store's resolution.
		period := c.next.Sub(now).Truncate(time.Millisecond) + time.Millisecond
		cs = append(cs, recovery.Count{Scope: c.scope, Key: c.key, Rate: ulimiter.Rate{Limit: c.ceiling, Period: period},
			Peek: peek, N: price})
	}
	return cs
}

// isMoney reports whether scope counts money, whose sums a refusal does
// not tell as RateLimit headers.
func isMoney(scope string) bool {
	return scope == ScopeSpendDay || scope == ScopeSpendMonth
}

// Network is the client network a share of the SMS budget is kept for:
// an IPv4 /24 or an IPv6 /48, as one subscriber or hosting customer
// commonly holds them. ip is an address, a host:port or a key of
// ClientKey; anything else is returned unchanged.
func Network(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		if p, perr := netip.ParsePrefix(ip); perr == nil {
			addr, err = p.Addr(), nil
		} else if ap, aerr := netip.ParseAddrPort(ip); aerr == nil {
			addr, err = ap.Addr(), nil
		}
	}
	if err != nil {
		return ip
	}
	addr = addr.WithZone("").Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(addr, bits).Masked().String()
}
