package storagetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// runUsed checks the single-use marks of not-me links: used once, across
// concurrent callers, and forgotten only after their end.
func runUsed(t *testing.T, h Harness) {
	u := h.Unit
	ctx := context.Background()

	t.Run("OnceThenUsed", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		until := clk.Now().Add(10 * u).Truncate(time.Millisecond)
		if used, err := s.Used(ctx, "notme:a"); err != nil || used {
			t.Fatalf("Used of a fresh key: %v, %v; want false", used, err)
		}
		if first, err := s.UseOnce(ctx, "notme:a", until); err != nil || !first {
			t.Fatalf("first UseOnce: %v, %v; want true", first, err)
		}
		if first, err := s.UseOnce(ctx, "notme:a", until); err != nil || first {
			t.Fatalf("second UseOnce: %v, %v; want false", first, err)
		}
		if used, err := s.Used(ctx, "notme:a"); err != nil || !used {
			t.Fatalf("Used after UseOnce: %v, %v; want true", used, err)
		}
		if used, err := s.Used(ctx, "notme:b"); err != nil || used {
			t.Fatalf("Used of another key: %v, %v; want false", used, err)
		}
	})

	t.Run("ConcurrentUseOnce", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		until := clk.Now().Add(100 * u)
		const callers = 50
		var won atomic.Int32
		errs := make([]error, callers)
		concurrently(callers, func(i int) {
			first, err := s.UseOnce(ctx, "notme:race", until)
			errs[i] = err
			if first {
				won.Add(1)
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := won.Load(); n != 1 {
			t.Fatalf("callers that used the key first: %d, want 1", n)
		}
	})

	t.Run("KeptUntilItsEnd", func(t *testing.T) {
		t.Parallel()
		s, clk := h.New(t)
		until := clk.Now().Add(5 * u)
		if first, err := s.UseOnce(ctx, "notme:end", until); err != nil || !first {
			t.Fatalf("UseOnce: %v, %v", first, err)
		}
		clk.Advance(u)
		if used, err := s.Used(ctx, "notme:end"); err != nil || !used {
			t.Fatalf("Used before the end: %v, %v; want true", used, err)
		}
		clk.Advance(5 * u)
		if used, err := s.Used(ctx, "notme:end"); err != nil || used {
			t.Fatalf("Used after the end: %v, %v; want false", used, err)
		}
	})
}
