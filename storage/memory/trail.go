package memory

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// trailTable holds the trails of support references: at most max entries
// in all, the reference written least recently going first when a new
// entry needs room, and storage.TrailMax per reference, the newest. Its
// own mutex keeps the background writes of trails off the lock every
// request takes.
type trailTable struct {
	mu      sync.Mutex
	max     int
	entries int // in every trail
	trails  *simplelru.LRU[string, *trail]
}

// trail is the entries of one reference and when they expire.
type trail struct {
	entries []storage.TrailEntry
	expires time.Time
}

// trailBound is how many trail entries a store of maxEntries keeps in all:
// a quarter of its flows, and never fewer than one full trail.
func trailBound(maxEntries int) int {
	return max(storage.TrailMax, maxEntries/4)
}

func newTrailTable(max int) *trailTable {
	t := &trailTable{max: max}
	// The table counts the entries it holds; a trail that goes takes its
	// own with it.
	t.trails, _ = simplelru.NewLRU[string, *trail](max, func(_ string, tr *trail) { t.entries -= len(tr.entries) })
	return t
}

// AppendTrail adds entries to their references' trails, each of which then
// lives for ttl, dropping the trails written least recently to stay within
// the table's bound.
func (m *Store) AppendTrail(_ context.Context, entries []storage.TrailEntry, ttl time.Duration) error {
	t := m.trails
	expires := m.clock.Now().Add(ttl)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range entries {
		tr, ok := t.trails.Get(e.Ref)
		if !ok {
			tr = &trail{}
			t.trails.Add(e.Ref, tr)
		}
		if len(tr.entries) == storage.TrailMax {
			tr.entries = append(tr.entries[:0], tr.entries[1:]...)
			t.entries--
		}
		tr.entries = append(tr.entries, e)
		tr.expires = expires
		t.entries++
		for t.entries > t.max {
			t.trails.RemoveOldest()
		}
	}
	return nil
}

// Trail returns the entries of ref, oldest first, or none.
func (m *Store) Trail(_ context.Context, ref string) ([]storage.TrailEntry, error) {
	t := m.trails
	now := m.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.trails.Peek(ref)
	if !ok {
		return nil, nil
	}
	if !now.Before(tr.expires) {
		t.trails.Remove(ref)
		return nil, nil
	}
	return append([]storage.TrailEntry(nil), tr.entries...), nil
}

// trailEntries returns how many trail entries m holds, for tests.
func (m *Store) trailEntries() int {
	m.trails.mu.Lock()
	defer m.trails.mu.Unlock()
	return m.trails.entries
}

// Interface guards
var _ storage.Trails = (*Store)(nil)
