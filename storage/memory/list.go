package memory

// links is an element's place in a list: the element embeds it.
type links[T any] struct{ prev, next *T }

//lint:ignore U1000 used through element[T], which staticcheck does not follow
func (l *links[T]) place() *links[T] { return l }

// element is a pointer to an element that embeds its links.
type element[T any] interface {
	*T
	place() *links[T]
}

// list is a doubly linked list of elements that hold their own links, so
// that taking one out needs no search and no allocation. An element is in
// one list at a time.
type list[T any] struct{ first, last *T }

// push appends e.
func push[T any, P element[T]](l *list[T], e P) {
	at := e.place()
	at.prev, at.next = l.last, nil
	if l.last != nil {
		P(l.last).place().next = e
	} else {
		l.first = e
	}
	l.last = e
}

// unlink takes e out of l.
func unlink[T any, P element[T]](l *list[T], e P) {
	at := e.place()
	if at.prev != nil {
		P(at.prev).place().next = at.next
	} else {
		l.first = at.next
	}
	if at.next != nil {
		P(at.next).place().prev = at.prev
	} else {
		l.last = at.prev
	}
	at.prev, at.next = nil, nil
}
