package httpsig

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNonceCache(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(specCreated, 0)
	until := t0.Add(2 * time.Minute)
	// want is nil for a claim that passes, errReplayed for one that
	// reports false, or the error Claim must return.
	errReplayed := errors.New("claimed before")
	type use struct {
		keyID, nonce string
		until, now   time.Time
		want         error
	}
	tests := []struct {
		name string
		size int
		uses []use
	}{
		{"new nonces pass", 3, []use{
			{"gw1", "a", until, t0, nil},
			{"gw1", "b", until, t0, nil},
		}},
		{"replay inside the window", 3, []use{
			{"gw1", "a", until, t0, nil},
			{"gw1", "a", until, until, errReplayed},
		}},
		{"reuse after the window", 3, []use{
			{"gw1", "a", until, t0, nil},
			{"gw1", "a", until.Add(time.Minute), until.Add(time.Nanosecond), nil},
			{"gw1", "a", until, until.Add(time.Second), errReplayed},
		}},
		{"same nonce under another key", 3, []use{
			{"gw1", "a", until, t0, nil},
			{"gw2", "a", until, t0, nil},
		}},
		{"key and nonce do not run together", 3, []use{
			{"gw", "1a", until, t0, nil},
			{"gw1", "a", until, t0, nil},
		}},
		{"full of live entries", 2, []use{
			{"gw1", "a", until, t0, nil},
			{"gw1", "b", until, t0, nil},
			{"gw1", "c", until, t0, ErrNonceCacheFull},
			{"gw1", "a", until, t0, errReplayed},
		}},
		{"expired entries make room", 2, []use{
			{"gw1", "a", t0.Add(time.Second), t0, nil},
			{"gw1", "b", t0.Add(2 * time.Second), t0, nil},
			{"gw1", "c", until, t0.Add(3 * time.Second), nil},
			{"gw1", "d", until, t0.Add(3 * time.Second), nil},
			{"gw1", "e", until, t0.Add(3 * time.Second), ErrNonceCacheFull},
			{"gw1", "c", until, t0.Add(3 * time.Second), errReplayed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewNonceCache(tt.size)
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range tt.uses {
				fresh, err := c.Claim(context.Background(), u.keyID, u.nonce, u.until, u.now)
				if err == nil && !fresh {
					err = errReplayed
				}
				if !errors.Is(err, u.want) || (err != nil && fresh) {
					t.Fatalf("claim %d (%s %s) = %v, %v; want %v", i, u.keyID, u.nonce, fresh, err, u.want)
				}
			}
		})
	}
}

func TestNewNonceCacheSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, -1} {
		if _, err := NewNonceCache(size); err == nil {
			t.Errorf("NewNonceCache(%d) succeeded", size)
		}
	}
}
