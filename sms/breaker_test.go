package sms

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	const cooldown = 30 * time.Second
	// Each step happens at start+at: "allow" checks the answer; "ok",
	// "fail" and "release" record the result of an allowed request.
	type step struct {
		op   string
		at   time.Duration
		want bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "stays closed below the threshold",
			steps: []step{
				{op: "fail"}, {op: "fail"},
				{op: "allow", want: true},
			},
		},
		{
			name: "a success resets the count of consecutive failures",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "ok"}, {op: "fail"}, {op: "fail"},
				{op: "allow", want: true},
			},
		},
		{
			name: "opens after threshold consecutive failures",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", want: false},
				{op: "allow", at: cooldown - time.Nanosecond, want: false},
			},
		},
		{
			name: "lets exactly one probe through after the cool-down",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", at: cooldown, want: true},
				{op: "allow", at: cooldown, want: false},
				{op: "allow", at: 2 * cooldown, want: false},
			},
		},
		{
			name: "a successful probe closes it",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", at: cooldown, want: true},
				{op: "ok", at: cooldown},
				{op: "allow", at: cooldown, want: true},
				{op: "allow", at: cooldown, want: true},
				{op: "fail", at: cooldown}, {op: "fail", at: cooldown},
				{op: "allow", at: cooldown, want: true},
			},
		},
		{
			name: "a failed probe opens it for another cool-down",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", at: cooldown, want: true},
				{op: "fail", at: cooldown + time.Second},
				{op: "allow", at: 2 * cooldown, want: false},
				{op: "allow", at: 2*cooldown + time.Second, want: true},
			},
		},
		{
			name: "a released probe lets another through",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "allow", at: cooldown, want: true},
				{op: "release", at: cooldown},
				{op: "allow", at: cooldown, want: true},
				{op: "allow", at: cooldown, want: false},
			},
		},
		{
			name: "late failures do not extend the cool-down",
			steps: []step{
				{op: "fail"}, {op: "fail"}, {op: "fail"},
				{op: "fail", at: 10 * time.Second},
				{op: "allow", at: cooldown, want: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			b := newBreaker(3, cooldown)
			for i, s := range tt.steps {
				now := start.Add(s.at)
				switch s.op {
				case "allow":
					if got := b.allow(now); got != s.want {
						t.Fatalf("step %d: allow at +%s = %v, want %v", i, s.at, got, s.want)
					}
				case "ok":
					b.success()
				case "fail":
					b.failure(now)
				case "release":
					b.release()
				default:
					t.Fatalf("step %d: unknown op %q", i, s.op)
				}
			}
		})
	}
}
