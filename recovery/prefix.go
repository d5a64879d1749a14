package recovery

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// DefaultPrefixDigits is how many digits of the national number, after the
// country calling code, name a destination prefix by default: an operator's
// block of numbers in most numbering plans (+44 7400, +31 6 123, +1 212 5),
// which is what traffic pumping rents and texts.
const DefaultPrefixDigits = 4

// prefixHidden is how many digits at the end of a national number a prefix
// never holds, however short the number: at least 10,000 numbers share any
// prefix, so that none names a person.
const prefixHidden = 4

// DestinationPrefix returns the destination prefix of a phone number: "+",
// its country calling code and the first digits digits of its national
// number, such as "+447400" for +447400123456 with digits 4, but never one
// of the last four digits. The conversion breaker counts codes under it.
// The number should be in E.164 form; separators are skipped, a calling
// code no plan assigns is taken as three digits, and a string without
// digits gives "+". It costs the same whatever the number.
func DestinationPrefix(phone string, digits int) string {
	var buf [16]byte
	d := buf[:0]
	for i := 0; i < len(phone) && len(d) < len(buf); i++ {
		if c := phone[i]; c >= '0' && c <= '9' {
			d = append(d, c)
		}
	}
	cc := callingCodeLen(d)
	n := min(max(digits, 0), len(d)-cc-prefixHidden)
	out := make([]byte, 0, 1+cc+max(n, 0))
	out = append(append(out, '+'), d[:cc+max(n, 0)]...)
	return string(out)
}

// callingCodeLen is the length of the country calling code that digits
// start with: calling codes are a prefix code, so at most one of their
// first one, two and three digits is one. It is 3 (or fewer, for fewer
// digits) when none is.
func callingCodeLen(digits []byte) int {
	cc := 0
	for l := 1; l <= 3 && l <= len(digits); l++ {
		cc = cc*10 + int(digits[l-1]-'0')
		if len(phonenumbers.GetRegionCodesForCountryCode(cc)) > 0 {
			return l
		}
	}
	return min(3, len(digits))
}

// PrefixCountry returns the ISO 3166 code of the country a destination
// prefix belongs to, as libphonenumber tells it: where several share a
// calling code (+1, +7, +44), the one whose numbers start so, or else the
// main one. An international network (+882, +883) is "001"; a calling
// code no plan assigns, "".
func PrefixCountry(prefix string) string {
	d := strings.TrimPrefix(prefix, "+")
	l := callingCodeLen([]byte(d))
	cc, err := strconv.Atoi(d[:l])
	if err != nil {
		return ""
	}
	regions := phonenumbers.GetRegionCodesForCountryCode(cc)
	switch len(regions) {
	case 0:
		return ""
	case 1:
		return regions[0]
	}
	// The region whose numbers a number starting with the prefix could be,
	// padded to each length a national number may have.
	national, code := d[l:], int32(cc)
	for pad := len(national); pad <= 15-l; pad++ {
		n, err := strconv.ParseUint(national+strings.Repeat("0", pad-len(national)), 10, 64)
		if err != nil {
			break
		}
		num := &phonenumbers.PhoneNumber{CountryCode: &code, NationalNumber: &n}
		if r := phonenumbers.GetRegionCodeForNumber(num); r != "" {
			return r
		}
	}
	return regions[0]
}
