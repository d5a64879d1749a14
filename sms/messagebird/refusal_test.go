package messagebird

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		value, date string
		want        time.Duration
	}{
		{"none", "", "", 0},
		{"seconds", "120", "", 2 * time.Minute},
		{"zero", "0", "", 0},
		{"negative", "-5", "", 0},
		{"capped", "31536000", "", maxRetryAfter},
		{"date after the answer's", "Wed, 21 Oct 2026 07:28:45 GMT", "Wed, 21 Oct 2026 07:28:00 GMT", 45 * time.Second},
		{"date before the answer's", "Wed, 21 Oct 2026 07:27:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT", 0},
		{"garbage", "soon", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := retryAfter(h); got != tt.want {
				t.Errorf("retryAfter(%q, Date %q) = %s, want %s", tt.value, tt.date, got, tt.want)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	m := testMessage
	m.Body = "Example Mail password reset code: 493817\nEnter it at https://mail.example.com/recovery/?flow=AbCdEfGhIj\n\n@mail.example.com #493817"
	tests := []struct {
		name, in, want string
	}{
		{"plain words kept", "no (correct) recipients found", "no (correct) recipients found"},
		{"recipient masked", "recipient 31612345678 and +31612345678 refused", "recipient +31*****678 and +31*****678 refused"},
		{"code and link taken out", "text 'Enter it at https://mail.example.com/recovery/?flow=AbCdEfGhIj' holds 493817",
			"text 'Enter it at …' holds …"},
		{"other numbers taken out", "number 0612 345678 (4915112345678) unknown", "number 0612 … (…) unknown"},
		{"key taken out", "key " + testAccessKey + " refused", "key <access_key> refused"},
		{"platform keys cut to their region", "key bk_us1_Zz9yXw8vU7tS6rQ5pO4nM3lK2jI1hG refused", "key bk_us1_… refused"},
		{"control characters", "line one\nline two\x1b[31m", "line one line two [31m"},
		{"final full stop", "Send the request to eu1.platform.bird.com.", "Send the request to eu1.platform.bird.com"},
		{"cut", strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := scrub(tt.in, m, testAccessKey); got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
