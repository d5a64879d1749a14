package sms

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter bounds the wait a provider may ask for: a message expires
// long before, and the Queue then gives it up.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter reads the Retry-After header of a provider's answer, in
// seconds or as an HTTP date, as a wait from now; 0 when there is none or
// it cannot be read, at most MaxRetryAfter.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(min(max(secs, 0), int64(MaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
