package directory

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestPhonePolicyCheck(t *testing.T) {
	t.Parallel()
	all, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	nlDEUS, err := NewPhonePolicy([]string{"NL", "de", " US "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		policy  *PhonePolicy
		in      string
		want    string
		wantErr error
	}{
		// Mobiles, and US numbers, which the metadata cannot tell from fixed lines.
		{"NL mobile", nlDEUS, "+31612345678", "+31612345678", nil},
		{"NL mobile spaced", nlDEUS, " +31 6 1234 5678 ", "+31612345678", nil},
		{"NL mobile with trunk zero", nlDEUS, "+31 (0)6 12345678", "+31612345678", nil},
		{"DE mobile", nlDEUS, "+4915123456789", "+4915123456789", nil},
		{"DE mobile dashed", nlDEUS, "+49-176-12345678", "+4917612345678", nil},
		{"US fixed line or mobile", nlDEUS, "+1 (201) 555-0123", "+12015550123", nil},
		{"FR mobile without allow-list", all, "+33612345678", "+33612345678", nil},
		{"GB mobile without allow-list", all, "+447400123456", "+447400123456", nil},

		// Numbers that are not E.164 or not assigned.
		{"empty", all, "", "", ErrInvalidPhone},
		{"missing plus", all, "31612345678", "", ErrInvalidPhone},
		{"national form", all, "0612345678", "", ErrInvalidPhone},
		{"double plus", all, "++31612345678", "", ErrInvalidPhone},
		{"letters", all, "+1 800 FLOWERS", "", ErrInvalidPhone},
		{"extension", all, "+31612345678 ext. 12", "", ErrInvalidPhone},
		{"tel uri", all, "tel:+31612345678", "", ErrInvalidPhone},
		{"not a number", all, "+abc", "", ErrInvalidPhone},
		{"plus only", all, "+", "", ErrInvalidPhone},
		{"unknown country code", all, "+0612345678", "", ErrInvalidPhone},
		{"NL mobile too short", all, "+3161234567", "", ErrInvalidPhone},
		{"NL mobile too long", all, "+316123456789", "", ErrInvalidPhone},
		{"overlong input", all, "+31 6 1234 5678 0000 0000 0000 0000", "", ErrInvalidPhone},

		// Numbers that do not reach a person's phone, or cost money.
		{"NL premium rate 0900", all, "+31900123456", "", ErrPremiumRate},
		{"DE premium rate 0900", all, "+499001234567", "", ErrPremiumRate},
		{"DE shared cost 0180", all, "+4918012345", "", ErrSharedCost},
		{"NL toll free 0800", all, "+31800123456", "", ErrTollFree},
		{"US toll free 800", all, "+18002345678", "", ErrTollFree},
		{"GB VoIP 056", all, "+445612345678", "", ErrVoIP},
		{"NL VoIP 085", all, "+31851234567", "", ErrVoIP},
		{"NL fixed line", all, "+31101234567", "", ErrNotMobile},
		{"GB personal number 070", all, "+447012345678", "", ErrNotMobile},
		{"GB pager 076", all, "+447640123456", "", ErrNotMobile},
		{"DE voicemail", all, "+49177991234567", "", ErrNotMobile},

		// Countries outside the allow-list.
		{"FR mobile outside NL DE US", nlDEUS, "+33612345678", "", ErrCountryNotAllowed},
		{"CA shares +1 with US", nlDEUS, "+15062345678", "", ErrCountryNotAllowed},
		{"non-geographic number", nlDEUS, "+883510012345", "", ErrCountryNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The second call may be answered from the cache.
			for _, call := range []string{"first", "second"} {
				got, err := tt.policy.Check(tt.in)
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Fatalf("%s Check(%q) error = %v, want %v", call, tt.in, err, tt.wantErr)
				}
				if got != tt.want {
					t.Errorf("%s Check(%q) = %q, want %q", call, tt.in, got, tt.want)
				}
				if digits := strings.Trim(tt.in, " +"); err != nil && len(digits) > 6 && strings.Contains(err.Error(), digits[len(digits)-6:]) {
					t.Errorf("error %q holds the number", err)
				}
			}
		})
	}
}

// TestPhonePolicyExamples checks the policy against the metadata's own
// example number of each type in the regions the project is deployed in,
// so that a metadata update that reclassifies ranges is noticed.
func TestPhonePolicyExamples(t *testing.T) {
	t.Parallel()
	p, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[phonenumbers.PhoneNumberType]error{
		phonenumbers.MOBILE:          nil,
		phonenumbers.FIXED_LINE:      ErrNotMobile,
		phonenumbers.TOLL_FREE:       ErrTollFree,
		phonenumbers.PREMIUM_RATE:    ErrPremiumRate,
		phonenumbers.SHARED_COST:     ErrSharedCost,
		phonenumbers.VOIP:            ErrVoIP,
		phonenumbers.PERSONAL_NUMBER: ErrNotMobile,
		phonenumbers.PAGER:           ErrNotMobile,
		phonenumbers.UAN:             ErrNotMobile,
		phonenumbers.VOICEMAIL:       ErrNotMobile,
	}
	for _, region := range []string{"NL", "DE", "FR", "BE", "GB"} {
		for typ, wantErr := range want {
			num := phonenumbers.GetExampleNumberForType(region, typ)
			if num == nil {
				continue
			}
			e164 := phonenumbers.Format(num, phonenumbers.E164)
			if _, err := p.Check(e164); !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Errorf("%s example of type %d (%s): error = %v, want %v", region, typ, e164, err, wantErr)
			}
		}
	}
}

// TestPhonePolicyCacheIdentical checks that an answer from the cache is the
// answer classify gives, refusals included, whichever outcome it is.
func TestPhonePolicyCacheIdentical(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrInvalidPhone, ErrPremiumRate, ErrSharedCost, ErrTollFree, ErrVoIP, ErrNotMobile, ErrCountryNotAllowed}
	tests := []struct {
		name    string
		regions []string
		in      string
	}{
		{"mobile", nil, "+31612345678"},
		{"mobile spaced", nil, " +31 6 1234 5678 "},
		{"fixed line or mobile", nil, "+12015550123"},
		{"parse error", nil, "+0612345678"},
		{"not assigned", nil, "+3161234567"},
		{"premium rate", nil, "+31900123456"},
		{"shared cost", nil, "+4918012345"},
		{"toll free", nil, "+31800123456"},
		{"voip", nil, "+31851234567"},
		{"fixed line", nil, "+31101234567"},
		{"country not allowed", []string{"DE"}, "+31612345678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPhonePolicy(tt.regions)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := p.classify(strings.TrimSpace(tt.in))
			var firstErr error
			for _, call := range []string{"uncached", "cached"} {
				got, err := p.Check(tt.in)
				if call == "uncached" {
					firstErr = err
				} else if err != firstErr {
					t.Errorf("cached Check(%q) error is not the value of the first call: not served from the cache", tt.in)
				}
				if got != want {
					t.Errorf("%s Check(%q) = %q, want %q", call, tt.in, got, want)
				}
				if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
					t.Errorf("%s Check(%q) error = %v, want %v", call, tt.in, err, wantErr)
				}
				for _, s := range sentinels {
					if errors.Is(err, s) != errors.Is(wantErr, s) {
						t.Errorf("%s Check(%q): errors.Is(%v, %v) = %t, want %t", call, tt.in, err, s, !errors.Is(wantErr, s), errors.Is(wantErr, s))
					}
				}
			}
			if n := p.checked.Len(); n != 1 {
				t.Errorf("cache holds %d entries after checking one number twice, want 1", n)
			}
		})
	}
}

// TestPhonePolicyCacheBound checks that the cache never outgrows its bound,
// that the least recently used number goes first, and that inputs refused
// on syntax alone, which may be long, never become keys.
func TestPhonePolicyCacheBound(t *testing.T) {
	t.Parallel()
	p, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"", "0612345678", "+31 6 1234 5678 0000 0000 0000 0000", "+1 800 FLOWERS"} {
		if _, err := p.Check(in); !errors.Is(err, ErrInvalidPhone) {
			t.Fatalf("Check(%q) error = %v, want %v", in, err, ErrInvalidPhone)
		}
	}
	if n := p.checked.Len(); n != 0 {
		t.Fatalf("cache holds %d entries after syntax refusals, want 0", n)
	}

	// Numbers with an unknown country code are the cheapest to parse.
	number := func(i int) string { return fmt.Sprintf("+0%014d", i) }
	for i := range checkCacheSize + 1 {
		if _, err := p.Check(number(i)); !errors.Is(err, ErrInvalidPhone) {
			t.Fatalf("Check(%q) error = %v, want %v", number(i), err, ErrInvalidPhone)
		}
	}
	if n := p.checked.Len(); n != checkCacheSize {
		t.Errorf("cache holds %d entries, want its bound %d", n, checkCacheSize)
	}
	if p.checked.Contains(number(0)) {
		t.Error("the least recently used number is still cached")
	}
	if !p.checked.Contains(number(checkCacheSize)) {
		t.Error("the most recent number is not cached")
	}
}

// TestPhonePolicyCachePerPolicy checks that policies with different allowed
// countries do not share answers.
func TestPhonePolicyCachePerPolicy(t *testing.T) {
	t.Parallel()
	all, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := NewPhonePolicy([]string{"NL"})
	if err != nil {
		t.Fatal(err)
	}
	const fr = "+33612345678"
	for range 2 {
		if got, err := all.Check(fr); err != nil || got != fr {
			t.Errorf("all countries: Check(%q) = %q, %v, want %q", fr, got, err, fr)
		}
		if _, err := nl.Check(fr); !errors.Is(err, ErrCountryNotAllowed) {
			t.Errorf("NL only: Check(%q) error = %v, want %v", fr, err, ErrCountryNotAllowed)
		}
	}
}

func TestNewPhonePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		regions []string
		wantErr string
	}{
		{"none", nil, ""},
		{"empty", []string{}, ""},
		{"known", []string{"NL", "DE", "US", "GB"}, ""},
		{"lower case", []string{"nl", "be"}, ""},
		{"UK is not ISO 3166", []string{"NL", "UK"}, `"UK"`},
		{"alpha-3", []string{"NLD"}, `"NLD"`},
		{"non-geographic entity", []string{"001"}, `"001"`},
		{"empty code", []string{""}, `""`},
		{"unknown", []string{"XX"}, `"XX"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPhonePolicy(tt.regions)
			if tt.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("NewPhonePolicy(%q) = %v, %v", tt.regions, p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewPhonePolicy(%q) accepted", tt.regions)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %s", err, tt.wantErr)
			}
		})
	}
}

// TestPhonePolicyConcurrent checks answers while goroutines add to the
// cache and read from it at once.
func TestPhonePolicyConcurrent(t *testing.T) {
	t.Parallel()
	p, err := NewPhonePolicy([]string{"NL"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				in := fmt.Sprintf("+316123456%02d", (g+i)%100)
				if got, err := p.Check(in); err != nil || got != in {
					t.Errorf("Check(%q) = %q, %v", in, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkPhonePolicyCheck measures a number checked again ("hit") and
// numbers checked for the first time ("miss"): twice as many distinct
// numbers as the cache holds, in turn, so that each one has been evicted by
// the time it comes back and every call parses, classifies and evicts.
func BenchmarkPhonePolicyCheck(b *testing.B) {
	b.Run("hit", func(b *testing.B) {
		p, err := NewPhonePolicy([]string{"NL", "DE", "US"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Check("+31 6 12345678"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		p, err := NewPhonePolicy([]string{"NL", "DE", "US"})
		if err != nil {
			b.Fatal(err)
		}
		numbers := make([]string, 2*checkCacheSize)
		for i := range numbers {
			numbers[i] = fmt.Sprintf("+31 6 1%07d", i)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Check(numbers[int(next.Add(1))%len(numbers)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestPhonePolicyPin checks pinned numbers: Check answers them as it would
// have, from the pinned answers (no cache entry, no parse), after a flood
// of other numbers has churned the cache; numbers of invalid syntax are not
// pinned; a later Pin keeps the earlier numbers.
func TestPhonePolicyPin(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process.
	numbers := []string{"+31612345678", "+31900123456", "+31101234567", "+3161234567", " +31 6 1234 5679 "}
	fresh, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Pin(append([]string{"0612345678", "+31 6 CALL ME"}, numbers...))
	if n := len(*p.pinned.Load()); n != len(numbers) {
		t.Fatalf("%d numbers pinned, want the %d of valid syntax", n, len(numbers))
	}
	for i := range checkCacheSize + 10 { // a flood of new numbers through the cache
		_, _ = p.Check(fmt.Sprintf("+316%08d", 30_000_000+i))
	}
	for _, n := range numbers {
		want, wantErr := fresh.Check(n)
		got, err := p.Check(n)
		if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("pinned Check(%q) = %q, %v; want %q, %v", n, got, err, want, wantErr)
		}
		if _, cached := p.checked.Peek(strings.TrimSpace(n)); cached {
			t.Errorf("Check(%q) went to the cache, not to the pinned answers", n)
		}
		if allocs := testing.AllocsPerRun(10, func() { _, _ = p.Check(n) }); allocs != 0 {
			t.Errorf("Check(%q) of a pinned number allocates %.0f times: it parsed", n, allocs)
		}
	}
	p.Pin([]string{"+31612345670"})
	if _, err := p.Check("+31612345678"); err != nil || len(*p.pinned.Load()) != len(numbers)+1 {
		t.Errorf("a second Pin lost the first: %v, %d pinned", err, len(*p.pinned.Load()))
	}
}
