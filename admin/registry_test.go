package admin

import (
	"context"
	"errors"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
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
					undo = append(undo, r.register(s.register, next[0], nil, nil, nil))
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

// leavingStore is the lock store of a handler whose config unloads while a
// request uses it: the first call unregisters the handler (its last user
// leaving) and then fails, as a closed client does.
type leavingStore struct {
	recovery.Store
	leave func() error
}

var errClosed = errors.New("redis: client is closed")

func (s *leavingStore) ListLocks(context.Context, string) ([]recovery.Lock, error) {
	if s.leave != nil {
		_ = s.leave()
	}
	return nil, errClosed
}

func (s *leavingStore) Impose(context.Context, string, string, time.Duration) (recovery.Lock, bool, error) {
	if s.leave != nil {
		_ = s.leave()
	}
	return recovery.Lock{}, false, errClosed
}

func (s *leavingStore) EndRun(context.Context, string, string) (bool, error) {
	if s.leave != nil {
		_ = s.leave()
	}
	return false, errClosed
}

// TestStoreUnloadedDuringRequest checks that a store whose handlers all
// left while the admin API was asking it is left out of the answer, and
// that a store still in use that fails makes the answer 503.
func TestStoreUnloadedDuringRequest(t *testing.T) {
	clk := clock.Real{}
	for _, leaves := range []bool{true, false} {
		store := &leavingStore{}
		g, err := limiter.New(limiter.DefaultConfig(), store, clk)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("test-leaving/%v/%s", leaves, t.Name())
		unregister := Register(key, g, nil, nil, nil)
		if leaves {
			store.leave = unregister
		} else {
			defer unregister()
		}
		api := new(API)
		w := httptest.NewRecorder()
		err = api.list(w, httptest.NewRequest(http.MethodGet, LocksPath, nil))
		var ae caddy.APIError
		switch {
		case leaves && err != nil:
			t.Errorf("listing with a store unloaded meanwhile: %v", err)
		case !leaves && (!errors.As(err, &ae) || ae.HTTPStatus != http.StatusServiceUnavailable):
			t.Errorf("listing with a failing store in use: %v, want 503", err)
		}
		if !leaves {
			err := api.impose(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut, LocksPath+"/account/alice@example.com", nil))
			if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusServiceUnavailable {
				t.Errorf("imposing with a failing store in use: %v, want 503", err)
			}
			continue
		}
		store.leave = Register(key, g, nil, nil, nil)
		w = httptest.NewRecorder()
		if err := api.lift(w, httptest.NewRequest(http.MethodDelete, LocksPath+"/account/alice@example.com", nil)); err != nil || w.Code != http.StatusNotFound {
			t.Errorf("lifting with a store unloaded meanwhile: %v, %d %s; want 404, nothing lifted", err, w.Code, w.Body)
		}
		store.leave = Register(key, g, nil, nil, nil)
		w = httptest.NewRecorder()
		if err := api.impose(w, httptest.NewRequest(http.MethodPut, LocksPath+"/account/alice@example.com", nil)); err != nil || w.Code != http.StatusNotFound {
			t.Errorf("imposing with a store unloaded meanwhile: %v, %d %s; want 404, nothing locked", err, w.Code, w.Body)
		}
	}
}
