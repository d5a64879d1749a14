package limiter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func TestTrips(t *testing.T) {
	t.Parallel()
	rule := recovery.BreakerRule{Window: 24 * time.Hour, MinSent: 100, MaxEntered: 5}
	never := recovery.BreakerRule{Window: time.Hour, MinSent: 20, MaxEntered: 0}
	for _, tc := range []struct {
		name          string
		rule          recovery.BreakerRule
		sent, entered int64
		want          bool
	}{
		{"below the least codes, none entered", rule, 99, 0, false},
		{"the least codes, none entered", rule, 100, 0, true},
		{"five in a hundred entered", rule, 100, 5, true},
		{"six in a hundred entered", rule, 100, 6, false},
		{"ten in two hundred", rule, 200, 10, true},
		{"eleven in two hundred", rule, 200, 11, false},
		{"sixty in a hundred", rule, 100, 60, false},
		{"0% trips with none entered", never, 20, 0, true},
		{"0% never trips once one is entered", never, 5000, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := limiter.Trips(tc.rule, tc.sent, tc.entered); got != tc.want {
				t.Fatalf("Trips(%+v, %d, %d) = %v, want %v", tc.rule, tc.sent, tc.entered, got, tc.want)
			}
		})
	}
}

func TestLockDurationGrowth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		p    recovery.Policy
		want []time.Duration // of locks 1, 2, 3, 4
	}{
		{"doubling by default", recovery.Policy{Duration: time.Hour, MaxDuration: 5 * time.Hour},
			[]time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 5 * time.Hour}},
		{"the breaker's first and later", recovery.Policy{Duration: time.Hour, MaxDuration: 24 * time.Hour, Growth: 24},
			[]time.Duration{time.Hour, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour}},
		{"no growth", recovery.Policy{Duration: time.Hour, MaxDuration: time.Hour, Growth: 1},
			[]time.Duration{time.Hour, time.Hour, time.Hour, time.Hour}},
		{"growth that would overflow", recovery.Policy{Duration: time.Hour, MaxDuration: 1 << 62, Growth: 1 << 40},
			[]time.Duration{time.Hour, 1 << 62, 1 << 62, 1 << 62}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i, want := range tc.want {
				if got := limiter.LockDuration(tc.p, int64(i+1)); got != want {
					t.Errorf("lock %d: %s, want %s", i+1, got, want)
				}
			}
		})
	}
}

func TestBreakerValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*limiter.Breaker)
		want string
	}{
		{"window", func(b *limiter.Breaker) { b.Window = 0 }, "prefix_breaker: window must be positive"},
		{"least codes", func(b *limiter.Breaker) { b.MinSent = 0 }, "prefix_breaker: codes before a block must be at least 1, got 0"},
		{"entered share", func(b *limiter.Breaker) { b.MaxEntered = 51 }, "prefix_breaker: entered share must be 0% to 50%"},
		{"negative share", func(b *limiter.Breaker) { b.MaxEntered = -1 }, "prefix_breaker: entered share must be 0% to 50%"},
		{"later block shorter", func(b *limiter.Breaker) { b.LaterBlock = time.Minute }, "later ones no shorter than the first"},
		{"held after", func(b *limiter.Breaker) { b.HeldAfter = -1 }, "must be 0 (none) or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := limiter.DefaultConfig()
			tc.edit(&cfg.Breaker)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to say %q", err, tc.want)
			}
			cfg.Breaker.Off = true
			if _, err := limiter.New(cfg, brokenStore{}, clock.NewManual(t0)); err != nil {
				t.Fatalf("a breaker that is off is not checked: %v", err)
			}
		})
	}
}
