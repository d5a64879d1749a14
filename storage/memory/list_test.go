package memory

import (
	"slices"
	"testing"
)

type item struct {
	n int
	links[item]
}

func TestList(t *testing.T) {
	t.Parallel()
	var l list[item]
	items := make([]*item, 4)
	for i := range items {
		items[i] = &item{n: i}
		push(&l, items[i])
	}
	order := func() (fwd, back []int) {
		for e := l.first; e != nil; e = e.next {
			fwd = append(fwd, e.n)
		}
		for e := l.last; e != nil; e = e.prev {
			back = append(back, e.n)
		}
		return fwd, back
	}
	check := func(want ...int) {
		t.Helper()
		fwd, back := order()
		slices.Reverse(back)
		if !slices.Equal(fwd, want) || !slices.Equal(back, want) {
			t.Fatalf("list %v (backwards %v), want %v", fwd, back, want)
		}
	}
	check(0, 1, 2, 3)
	unlink(&l, items[1]) // from the middle
	check(0, 2, 3)
	unlink(&l, items[0]) // the first
	unlink(&l, items[3]) // the last
	check(2)
	if items[1].prev != nil || items[1].next != nil {
		t.Fatal("an element taken out keeps its links")
	}
	push(&l, items[1]) // back in, at the end
	check(2, 1)
	unlink(&l, items[2])
	unlink(&l, items[1])
	check()
}
