package admin

import (
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

func TestGuardRegistry(t *testing.T) {
	t.Parallel()
	// Only the identity of a guard matters to the registry.
	a, b, c := new(limiter.Guard), new(limiter.Guard), new(limiter.Guard)
	type step struct {
		register   string // store key to register the next guard under
		unregister int    // 1-based index of an earlier registration to undo
	}
	tests := []struct {
		name  string
		steps []step
		want  []*limiter.Guard // newest guard of each store, by store key
	}{
		{
			name:  "one handler",
			steps: []step{{register: "memory/100"}},
			want:  []*limiter.Guard{a},
		},
		{
			name:  "reload: new config registers before the old one leaves",
			steps: []step{{register: "memory/100"}, {register: "memory/100"}, {unregister: 1}},
			want:  []*limiter.Guard{b},
		},
		{
			name:  "overlap: the newest handler serves while both run",
			steps: []step{{register: "memory/100"}, {register: "memory/100"}},
			want:  []*limiter.Guard{b},
		},
		{
			name:  "failed reload: the old handler serves again",
			steps: []step{{register: "memory/100"}, {register: "memory/100"}, {unregister: 2}},
			want:  []*limiter.Guard{a},
		},
		{
			name:  "last handler gone",
			steps: []step{{register: "memory/100"}, {unregister: 1}},
			want:  []*limiter.Guard{},
		},
		{
			name:  "unregistering twice leaves the others",
			steps: []step{{register: "memory/100"}, {register: "memory/100"}, {unregister: 2}, {unregister: 2}},
			want:  []*limiter.Guard{a},
		},
		{
			name:  "one entry per store, ordered by key",
			steps: []step{{register: "redis/x"}, {register: "memory/100"}, {register: "redis/x"}},
			want:  []*limiter.Guard{b, c},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newGuardRegistry()
			next := []*limiter.Guard{a, b, c}
			var undo []func() error
			for _, s := range tt.steps {
				if s.register != "" {
					undo = append(undo, r.register(s.register, next[0], nil))
					next = next[1:]
					continue
				}
				if err := undo[s.unregister-1](); err != nil {
					t.Fatalf("unregister: %v", err)
				}
			}
			got := r.current()
			if len(got) != len(tt.want) {
				t.Fatalf("current() has %d entries, want %d", len(got), len(tt.want))
			}
			for i, e := range got {
				if e.guard != tt.want[i] {
					t.Errorf("entry %d is guard %p, want %p", i, e.guard, tt.want[i])
				}
			}
		})
	}
}
