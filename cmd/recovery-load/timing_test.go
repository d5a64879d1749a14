package main

import (
	"math"
	"testing"
)

func TestMannWhitney(t *testing.T) {
	t.Parallel()
	// Textbook case: every value of a below every value of b.
	a := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	b := []float64{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if u, p := mannWhitney(a, b); u != 0 || p > 2e-4 || p < 1e-4 {
		t.Errorf("disjoint samples: U = %v, p = %v, want 0 and about 1.6e-4", u, p)
	}
	if u, p := mannWhitney(b, a); u != 100 || p > 2e-4 {
		t.Errorf("reversed: U = %v, p = %v, want 100", u, p)
	}
	// Interleaved samples tell nothing apart.
	c := []float64{1, 3, 5, 7, 9, 11, 13, 15, 17, 19}
	d := []float64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}
	if _, p := mannWhitney(c, d); p < 0.5 {
		t.Errorf("interleaved samples: p = %v, want well above 0.5", p)
	}
	// All tied: no evidence either way.
	if _, p := mannWhitney([]float64{5, 5, 5}, []float64{5, 5}); p != 1 {
		t.Errorf("all ties: p = %v, want 1", p)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v, want 2.5", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}
