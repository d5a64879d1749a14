package storage

import (
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// flowTable holds at most max flows. When it is full, a new flow displaces
// the oldest flow of the client (an IPv4 address or an IPv6 /64, as
// limiter.ClientKey groups them) that holds the most, unless the oldest
// flow of all has expired and can go instead. Of clients holding equally
// many, the one that came to hold that many last gives first. So a flood
// from many addresses pushes out its own flows: it takes from its biggest
// holders, and among equals from its newest, while a person who started a
// flow before it holds no more than any flooder and came first. What is
// evicted depends only on who started the flows and when, never on
// whether their account exists.
//
// It is not safe for concurrent use; Memory guards it with its mutex.
type flowTable struct {
	max     int
	byID    map[string]*flowEntry
	clients map[string]*clientFlows
	// byCount[n] lists the clients with n flows, in the order they came
	// to hold n; top is the largest n in use.
	byCount []clientList
	top     int
	// all lists every flow, oldest first.
	oldest, newest *flowEntry
}

// flowEntry is one flow, linked into the list of all flows and the list of
// its client's.
type flowEntry struct {
	flow               recovery.Flow
	client             *clientFlows
	prev, next         *flowEntry // all flows, in order of creation
	prevMine, nextMine *flowEntry // this client's flows, in order of creation
}

// clientFlows is one client's flows, oldest first.
type clientFlows struct {
	key            string
	n              int
	oldest, newest *flowEntry
	prev, next     *clientFlows // in byCount[n]
}

// clientList is a list of clients, linked through clientFlows.
type clientList struct{ first, last *clientFlows }

func (l *clientList) push(c *clientFlows) {
	c.prev, c.next = l.last, nil
	if l.last != nil {
		l.last.next = c
	} else {
		l.first = c
	}
	l.last = c
}

func (l *clientList) unlink(c *clientFlows) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.first = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.last = c.prev
	}
	c.prev, c.next = nil, nil
}

func newFlowTable(max int) *flowTable {
	return &flowTable{
		max:     max,
		byID:    make(map[string]*flowEntry),
		clients: make(map[string]*clientFlows),
		byCount: make([]clientList, 1),
	}
}

// Len returns how many flows the table holds, expired ones included.
func (t *flowTable) Len() int { return len(t.byID) }

// get returns the entry of a flow, or nil.
func (t *flowTable) get(id string) *flowEntry { return t.byID[id] }

// add stores f, replacing any flow with its ID, after making room.
func (t *flowTable) add(f recovery.Flow, now time.Time) {
	if e := t.byID[f.ID]; e != nil {
		t.remove(e)
	}
	for len(t.byID) >= t.max {
		t.evict(now)
	}
	key := limiter.ClientKey(f.ClientIP)
	c := t.clients[key]
	if c == nil {
		c = &clientFlows{key: key}
		t.clients[key] = c
	}
	e := &flowEntry{flow: f, client: c}
	t.byID[f.ID] = e
	// Append to the list of all flows and to the client's.
	e.prev = t.newest
	if t.newest != nil {
		t.newest.next = e
	} else {
		t.oldest = e
	}
	t.newest = e
	e.prevMine = c.newest
	if c.newest != nil {
		c.newest.nextMine = e
	} else {
		c.oldest = e
	}
	c.newest = e
	t.recount(c, c.n+1)
}

// remove deletes an entry.
func (t *flowTable) remove(e *flowEntry) {
	delete(t.byID, e.flow.ID)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.newest = e.prev
	}
	c := e.client
	if e.prevMine != nil {
		e.prevMine.nextMine = e.nextMine
	} else {
		c.oldest = e.nextMine
	}
	if e.nextMine != nil {
		e.nextMine.prevMine = e.prevMine
	} else {
		c.newest = e.prevMine
	}
	t.recount(c, c.n-1)
	if c.n == 0 {
		delete(t.clients, c.key)
	}
}

// evict removes one flow: the oldest of all if it has expired, otherwise
// the oldest of a client holding the most.
func (t *flowTable) evict(now time.Time) {
	if o := t.oldest; o != nil && !now.Before(o.flow.ExpiresAt) {
		t.remove(o)
		return
	}
	if c := t.byCount[t.top].last; c != nil {
		t.remove(c.oldest)
	}
}

// recount moves c to the bucket of clients with n flows.
func (t *flowTable) recount(c *clientFlows, n int) {
	if c.n > 0 {
		t.byCount[c.n].unlink(c)
	}
	c.n = n
	if n > 0 {
		for len(t.byCount) <= n {
			t.byCount = append(t.byCount, clientList{})
		}
		t.byCount[n].push(c)
	}
	for t.top > 0 && t.byCount[t.top].first == nil {
		t.top--
	}
	t.top = max(t.top, n)
}
