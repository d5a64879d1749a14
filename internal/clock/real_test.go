package clock

import (
	"testing"
	"time"
)

func TestReal(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got := Real{}.Now()
	after := time.Now()
	if got.Before(before) || got.After(after) {
		t.Errorf("Now: got %v, want between %v and %v", got, before, after)
	}
}
