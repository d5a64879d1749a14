package recovery_test

import (
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func TestDestinationPrefix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, phone string
		digits      int
		want        string
	}{
		{"UK mobile", "+447400123456", 4, "+447400"},
		{"one-digit calling code", "+12125551234", 4, "+12125"},
		{"three-digit calling code", "+2348031234567", 4, "+2348031"},
		{"Dutch mobile", "+31612345678", 4, "+316123"},
		{"Dutch M2M range", "+3197012345678", 3, "+31970"},
		{"calling code only", "+31612345678", 0, "+31"},
		// A short national number keeps its last four digits out of the
		// prefix, so that no prefix names one number.
		{"short national number", "+6831234", 4, "+683"},
		{"separators", "+31 6 1234 5678", 4, "+316123"},
		{"no calling code known", "+99912345678", 4, "+9991234"},
		{"garbage", "alice", 4, "+"},
		{"empty", "", 4, "+"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := recovery.DestinationPrefix(tt.phone, tt.digits); got != tt.want {
				t.Errorf("DestinationPrefix(%q, %d) = %q, want %q", tt.phone, tt.digits, got, tt.want)
			}
		})
	}
}

func TestPrefixCountry(t *testing.T) {
	t.Parallel()
	for prefix, want := range map[string]string{
		"+447400":  "GB",
		"+447624":  "IM", // the Isle of Man shares +44
		"+18765":   "JM", // and Jamaica +1
		"+12125":   "US",
		"+316123":  "NL",
		"+2348031": "NG",
		"+8821234": "001", // an international network, no country
		"+":        "",
		"+9991234": "",
	} {
		if got := recovery.PrefixCountry(prefix); got != want {
			t.Errorf("PrefixCountry(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func BenchmarkDestinationPrefix(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		recovery.DestinationPrefix("+447400123456", 4)
	}
}
