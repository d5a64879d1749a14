package directory

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nyaruka/phonenumbers"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Reasons a number gets no code. Check returns one of these, possibly
// wrapped with detail, so that refusals can be counted by reason.
var (
	// ErrInvalidPhone is a number that is not in E.164 form ("+" and
	// digits, optionally spaced) or that no numbering plan assigns.
	ErrInvalidPhone = errors.New("invalid phone number")
	// ErrNationalFormat is a number without "+" and its country code, as
	// national directories write them (0612345678). It matches
	// ErrInvalidPhone too.
	ErrNationalFormat = fmt.Errorf("%w: does not start with +", ErrInvalidPhone)
	// ErrPremiumRate is a premium-rate number (such as 0900 in NL): texting
	// it could cost the sender or earn an attacker money.
	ErrPremiumRate = errors.New("premium-rate phone number")
	// ErrSharedCost is a shared-cost number (such as 0180 in DE).
	ErrSharedCost = errors.New("shared-cost phone number")
	// ErrTollFree is a toll-free number (such as 0800), which takes calls,
	// not SMS.
	ErrTollFree = errors.New("toll-free phone number")
	// ErrVoIP is a VoIP number. NIST SP 800-63B section 5.1.3.3 does not
	// accept one as an out-of-band authenticator: it proves no possession of
	// a device.
	ErrVoIP = errors.New("voip phone number")
	// ErrNotMobile is any other number that does not reach a mobile phone:
	// fixed line, pager, personal (forwarding) number, voicemail, UAN.
	ErrNotMobile = errors.New("phone number is not a mobile number")
	// ErrCountryNotAllowed is a number outside the allowed countries.
	ErrCountryNotAllowed = errors.New("phone number country not allowed")
)

// phoneReasons name the refusals of Check for metrics and reports, in the
// order errors are matched: the national format before other invalid
// numbers.
var phoneReasons = []struct {
	err  error
	name string
}{
	{ErrNationalFormat, "national_format"},
	{ErrInvalidPhone, "invalid"},
	{ErrCountryNotAllowed, "country_not_allowed"},
	{ErrNotMobile, "not_mobile"},
	{ErrPremiumRate, "premium_rate"},
	{ErrSharedCost, "shared_cost"},
	{ErrTollFree, "toll_free"},
	{ErrVoIP, "voip"},
}

// PhoneReason returns the short name of a refusal of PhonePolicy.Check,
// fit for a metric label: national_format, invalid, country_not_allowed,
// not_mobile, premium_rate, shared_cost, toll_free or voip. It returns ""
// for nil and for any other error.
func PhoneReason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range phoneReasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return ""
}

// PhoneReasons returns every name PhoneReason gives, in a fixed order.
func PhoneReasons() []string {
	names := make([]string, len(phoneReasons))
	for i, r := range phoneReasons {
		names[i] = r.name
	}
	return names
}

// maxPhoneLen bounds the input before it reaches the parser; E.164 numbers
// have at most 15 digits, and a few spaces or dashes are allowed between.
const maxPhoneLen = 32

// checkCacheSize bounds the results a PhonePolicy remembers. Parsing and
// classifying a number is the largest single cost of a /start, and the same
// number comes back for a resend, the notice after a reset and every retry.
// Keys are at most maxPhoneLen bytes, so a full cache holds under 3 MB
// (about 280 bytes an entry, measured).
const checkCacheSize = 10_000

// PhonePolicy is a recovery.PhonePolicy over libphonenumber's metadata: it
// accepts valid mobile numbers (and those that cannot be told from a fixed
// line, as in the US), optionally only from some countries. It remembers
// the answers for the last 10,000 numbers it checked. It is safe for
// concurrent use.
type PhonePolicy struct {
	allowed map[string]bool // ISO 3166 alpha-2 region codes; nil allows all
	checked *lru.Cache[string, checkResult]
	// pinned holds the answers for numbers checked ahead (Pin), which the
	// cache of recent ones never pushes out.
	pinned atomic.Pointer[map[string]checkResult]
}

// checkResult is what Check answered for one number.
type checkResult struct {
	e164 string
	err  error
}

// NewPhonePolicy returns a policy that accepts numbers of allowedRegions (ISO
// 3166 alpha-2 codes such as "NL" or "GB", in any case), or of every region
// when it is empty. An unknown code is an error naming it.
func NewPhonePolicy(allowedRegions []string) (*PhonePolicy, error) {
	p := &PhonePolicy{}
	supported := phonenumbers.GetSupportedRegions()
	for _, code := range allowedRegions {
		region := strings.ToUpper(strings.TrimSpace(code))
		if !supported[region] {
			return nil, fmt.Errorf("phone policy: unknown region code %q (want an ISO 3166 alpha-2 code such as NL, DE or GB)", code)
		}
		if p.allowed == nil {
			p.allowed = make(map[string]bool, len(allowedRegions))
		}
		p.allowed[region] = true
	}
	checked, err := lru.New[string, checkResult](checkCacheSize)
	if err != nil {
		return nil, fmt.Errorf("phone policy: %w", err)
	}
	p.checked = checked
	return p, nil
}

// Check returns phone in E.164 form if it may receive a code, and otherwise
// an error that matches one of the Err* values of this package. phone must
// start with "+": a national number is ambiguous, so it is refused rather
// than guessed. Errors never hold the number.
//
// A number seen recently gets the answer it got then, the same E.164 string
// or the same error value.
func (p *PhonePolicy) Check(phone string) (string, error) {
	phone = strings.TrimSpace(phone)
	// The syntax check is cheap and bounds the length of the cache's keys.
	if err := checkSyntax(phone); err != nil {
		return "", err
	}
	if pinned := p.pinned.Load(); pinned != nil {
		if r, ok := (*pinned)[phone]; ok {
			return r.e164, r.err
		}
	}
	if r, ok := p.checked.Get(phone); ok {
		return r.e164, r.err
	}
	e164, err := p.classify(phone)
	// A clone, so that the key does not keep a longer input alive.
	p.checked.Add(strings.Clone(phone), checkResult{e164: e164, err: err})
	return e164, err
}

// Pin checks numbers now and keeps the answers for good, beside the cache
// of recent ones, which a flood of new numbers would churn: the gateway pins
// the stand-in numbers of unknown accounts (recovery.Keyring.StandInPhones)
// when it loads, so that an unknown account's /start never waits on the
// parser, while its answers stay the same as Check's. Numbers of invalid
// syntax are left out, and numbers pinned before stay: a policy shared by
// configs (the gateway keeps one per set of allowed countries across
// reloads) holds every number its directories ever loaded. It is safe to
// call while Check runs.
func (p *PhonePolicy) Pin(numbers []string) {
	old := p.pinned.Load()
	var fresh []string
	for _, n := range numbers {
		n = strings.TrimSpace(n)
		if old != nil {
			if _, ok := (*old)[n]; ok {
				continue
			}
		}
		if checkSyntax(n) == nil {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) == 0 {
		return // a reload of the same numbers: nothing to check or copy
	}
	next := make(map[string]checkResult, len(fresh))
	if old != nil {
		next = maps.Clone(*old)
	}
	for _, n := range fresh {
		if _, ok := next[n]; ok {
			continue
		}
		e164, err := p.classify(n)
		if e164 == n {
			e164 = n // one string for both, as a directory's number usually is
		}
		// The key is the caller's string: a directory keeps its numbers.
		next[n] = checkResult{e164: e164, err: err}
	}
	p.pinned.Store(&next)
}

// classify does the work of Check for a number of valid syntax.
func (p *PhonePolicy) classify(phone string) (string, error) {
	num, err := phonenumbers.Parse(phone, "")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidPhone, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: not assigned in its numbering plan", ErrInvalidPhone)
	}
	if region := phonenumbers.GetRegionCodeForNumber(num); p.allowed != nil && !p.allowed[region] {
		return "", fmt.Errorf("%w: %s", ErrCountryNotAllowed, region)
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return phonenumbers.Format(num, phonenumbers.E164), nil
	case phonenumbers.PREMIUM_RATE:
		return "", ErrPremiumRate
	case phonenumbers.SHARED_COST:
		return "", ErrSharedCost
	case phonenumbers.TOLL_FREE:
		return "", ErrTollFree
	case phonenumbers.VOIP:
		return "", ErrVoIP
	default:
		return "", ErrNotMobile
	}
}

// checkSyntax accepts "+" followed by digits and the separators people
// write between them. It refuses what the parser would otherwise read
// leniently: a missing "+", letters ("+1 800 FLOWERS"), extensions, "tel:".
func checkSyntax(phone string) error {
	if len(phone) > maxPhoneLen {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidPhone, maxPhoneLen)
	}
	rest, ok := strings.CutPrefix(phone, "+")
	if !ok {
		return ErrNationalFormat
	}
	for _, r := range rest {
		if (r < '0' || r > '9') && !strings.ContainsRune(" -.()", r) {
			return fmt.Errorf("%w: character %q is not a digit or separator", ErrInvalidPhone, r)
		}
	}
	return nil
}

// Interface guards
var _ recovery.PhonePolicy = (*PhonePolicy)(nil)
