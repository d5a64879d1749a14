package storagetest

import (
	"sync/atomic"
	"testing"
)

func TestConcurrently(t *testing.T) {
	t.Parallel()
	var sum atomic.Int64
	concurrently(100, func(i int) { sum.Add(int64(i)) })
	if got := sum.Load(); got != 4950 {
		t.Errorf("sum of the indexes: got %d, want 4950", got)
	}
}
