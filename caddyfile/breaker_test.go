package caddyfile

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

// TestParsePrefixBreaker reads prefix_breaker: off, each setting, and the
// errors of a bad line, with the bad value quoted.
func TestParsePrefixBreaker(t *testing.T) {
	t.Parallel()
	three, two, four := 3, int64(2), int64(4)
	tests := []struct {
		name    string
		input   string
		want    *module.PrefixBreaker
		wantErr string
	}{
		{name: "default", input: "sms_recovery {\n}"},
		{name: "off", input: "sms_recovery {\nprefix_breaker off\n}", want: &module.PrefixBreaker{Off: true}},
		{name: "every setting", input: "sms_recovery {\nprefix_breaker {\ndigits 3\ntrip 50 12h 2%\nblock 30m 12h 4\n}\n}",
			want: &module.PrefixBreaker{Digits: &three, MinCodes: 50, Window: caddy.Duration(12 * time.Hour), MaxEntered: &two,
				Block: caddy.Duration(30 * time.Minute), LaterBlock: caddy.Duration(12 * time.Hour), HeldAfter: &four}},
		{name: "blocks without held", input: "sms_recovery {\nprefix_breaker {\nblock 2h 2d\n}\n}",
			want: &module.PrefixBreaker{Block: caddy.Duration(2 * time.Hour), LaterBlock: caddy.Duration(48 * time.Hour)}},
		{name: "on is no setting", input: "sms_recovery {\nprefix_breaker on\n}", wantErr: "prefix_breaker: 'on' is not off"},
		{name: "off and more", input: "sms_recovery {\nprefix_breaker off now\n}", wantErr: "prefix_breaker: 'now' is not off"},
		{name: "digits not a number", input: "sms_recovery {\nprefix_breaker {\ndigits four\n}\n}", wantErr: "digits: 'four' is not a whole number"},
		{name: "trip arguments", input: "sms_recovery {\nprefix_breaker {\ntrip 100 24h\n}\n}", wantErr: "wrong argument count"},
		{name: "trip codes", input: "sms_recovery {\nprefix_breaker {\ntrip 0 24h 5%\n}\n}", wantErr: "trip: codes '0' must be a whole number of at least 1"},
		{name: "trip window", input: "sms_recovery {\nprefix_breaker {\ntrip 100 a-day 5%\n}\n}", wantErr: "trip: window 'a-day' is not a duration"},
		{name: "trip share", input: "sms_recovery {\nprefix_breaker {\ntrip 100 24h 0.05\n}\n}", wantErr: "entered share '0.05' must be a whole percentage"},
		{name: "block arguments", input: "sms_recovery {\nprefix_breaker {\nblock 1h\n}\n}", wantErr: "wrong argument count"},
		{name: "block duration", input: "sms_recovery {\nprefix_breaker {\nblock 1h forever\n}\n}", wantErr: "block: 'forever' is not a duration"},
		{name: "block held", input: "sms_recovery {\nprefix_breaker {\nblock 1h 24h -1\n}\n}", wantErr: "held from '-1' must be a whole number"},
		{name: "unknown", input: "sms_recovery {\nprefix_breaker {\nwindow 24h\n}\n}", wantErr: "prefix_breaker: unrecognized subdirective 'window'"},
		{name: "twice in the block", input: "sms_recovery {\nprefix_breaker {\ndigits 3\ndigits 4\n}\n}", wantErr: "prefix_breaker: duplicate subdirective 'digits'"},
		{name: "twice", input: "sms_recovery {\nprefix_breaker off\nprefix_breaker off\n}", wantErr: "duplicate subdirective 'prefix_breaker'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := parseHandler(t, tt.input, tt.wantErr)
			if !ok {
				return
			}
			got, want := m.PrefixBreaker, tt.want
			if (got == nil) != (want == nil) {
				t.Fatalf("prefix_breaker = %+v, want %+v", got, want)
			}
			if got == nil {
				return
			}
			if got.Off != want.Off || !sameInt(got.Digits, want.Digits) || got.MinCodes != want.MinCodes || got.Window != want.Window ||
				!sameInt(got.MaxEntered, want.MaxEntered) || got.Block != want.Block || got.LaterBlock != want.LaterBlock ||
				!sameInt(got.HeldAfter, want.HeldAfter) {
				t.Fatalf("prefix_breaker = %+v, want %+v", got, want)
			}
		})
	}
}

func sameInt[T int | int64](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
