package directory

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func TestPhoneReason(t *testing.T) {
	t.Parallel()
	nl, err := NewPhonePolicy([]string{"NL"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"+31612345678", ""},
		{"0612345678", "national_format"},
		{"31612345678", "national_format"},
		{"+3161234567", "invalid"},
		{"+31 6 CALL ME", "invalid"},
		{"+33612345678", "country_not_allowed"},
		{"+31201234567", "not_mobile"},
		{"+31900123456", "premium_rate"},
		{"+31800123456", "toll_free"},
		{"+31851234567", "voip"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		_, err := nl.Check(tt.in)
		if got := PhoneReason(err); got != tt.want {
			t.Errorf("PhoneReason(Check(%q)) = %q (%v), want %q", tt.in, got, err, tt.want)
		}
		seen[tt.want] = true
	}
	seen["shared_cost"] = PhoneReason(fmt.Errorf("checking: %w", ErrSharedCost)) == "shared_cost"
	for _, r := range PhoneReasons() {
		if !seen[r] {
			t.Errorf("reason %q not seen", r)
		}
	}
	if r := PhoneReason(errors.New("timeout")); r != "" {
		t.Errorf("PhoneReason of another error = %q, want none", r)
	}
}

func TestPhonePolicySurvey(t *testing.T) {
	t.Parallel()
	nl, err := NewPhonePolicy([]string{"NL"})
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]recovery.Entry{
		"alice":  {Phone: "+31612345678"},
		"bob":    {Phone: "0612345670", Lang: "nl"},
		"carol":  {Phone: "+31201234567"},
		"dave":   {Phone: "+31900123456"},
		"erin":   {Phone: "+4915123456789"},
		"frank":  {Phone: "+31 6 1234 5679"},
		"gina":   {},
		"harry":  {Phone: "0612345671"},
		"albert": {Phone: "+31201234568"},
	}
	s := nl.Survey(entries)
	if s.Accounts != 9 || s.Usable != 2 || s.RefusedTotal() != 6 {
		t.Errorf("Survey = %+v, want 9 accounts, 2 usable, 6 refused", s)
	}
	wantRefused := map[string]int{"national_format": 2, "not_mobile": 2, "premium_rate": 1, "country_not_allowed": 1}
	if !maps.Equal(s.Refused, wantRefused) {
		t.Errorf("refused %v, want %v", s.Refused, wantRefused)
	}
	if want := []string{"albert", "bob", "carol", "dave", "erin"}; !slices.Equal(s.FirstRefused, want) {
		t.Errorf("first refused %v, want %v", s.FirstRefused, want)
	}
	if s := nl.Survey(map[string]recovery.Entry{"alice": {Phone: "+31612345678"}}); s.Refused != nil || s.FirstRefused != nil {
		t.Errorf("a clean directory: %+v", s)
	}
}
