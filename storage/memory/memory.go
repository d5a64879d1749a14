package memory

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Store is the store http.handlers.sms_recovery.storage.memory, the
// gateway's default: its settings, and once opened, state in this process,
// a recovery.Store, a recovery.Store and a ulule limiter.Store. The
// gateway opens one per distinct settings and keeps it across config
// reloads (see storage.Namespace). JSON:
// {"backend": "memory", "max_entries": 100000}.
//
// It keeps at most MaxEntries flows, MaxEntries tokens and MaxEntries
// records of security state, each kind in a table of its own, rate
// counters in two tables of counterBound(MaxEntries) and the conversion
// breaker's in one of breakerBound(MaxEntries). No flood of one kind
// pushes out another kind, and none makes a person's right code fail
// (SPEC §4):
//
//   - Flows: a live flow is never dropped; a start that finds no room is
//     refused, the clients holding the most first (see flowTable).
//   - Tokens: the least recently used goes first; a token exists only after
//     a correct code, which no flood can make.
//   - Security state: a lock or a run behind one is never dropped; when
//     the table is full the cheapest run of wrong codes makes room (see
//     lockTable), and a right code needs no room at all (RunPlan).
//   - Budgets (limiter.Kept: start_account, start_phone, sms_global) are
//     never dropped while their window is open; clients' own counters are
//     dropped least recently used first (see counterTable), and so are the
//     breaker's (breaker.go), whose blocks are security state.
//
// Records expire against the clock when they are read; an expired record
// behaves as missing and is dropped then. The store starts no goroutines.
// One mutex guards every table, which makes every method atomic.
type Store struct {
	// MaxEntries bounds flows, tokens and security records (locks, blocks
	// and the wrong codes behind them), each kind apart, and the rate
	// counters in proportion (2.5 per entry). A full flow table refuses new
	// starts (503 with Retry-After), the clients holding the most first,
	// and never drops a pending flow; a full security table lets go of the
	// cheapest run of wrong codes, never a lock, and never refuses a right
	// code. At least 100. Default: 100000.
	MaxEntries int `json:"max_entries,omitempty"`

	// SoftMemoryLimit keeps the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit) at 48 MiB plus the most every open
	// memory store's tables hold when full, so that under a flood the
	// collector works harder rather than the heap growing to twice what is
	// live (docs/memory.md). It never raises a limit already in force, and
	// a GOMEMLIMIT in the environment always wins. False leaves the
	// runtime's limit alone, for a process that manages its own.
	// Default: true.
	SoftMemoryLimit *bool `json:"soft_memory_limit,omitempty"`

	clock recovery.Clock

	mu       sync.Mutex
	flows    *flowTable
	tokens   *simplelru.LRU[string, memToken] // keyed by the token's hash
	locks    *lockTable
	counters *counterTable // clients' own, dropped least recently used first
	budgets  *counterTable // limiter.Kept, never dropped while their window is open
	breakers *counterTable // the conversion breaker's, dropped least recently used first
	trails   *trailTable   // support's trails, with a mutex of their own (trail.go)
	used     usedTable     // single-use keys marked used, never dropped before their end

	tokensLetGo uint64
}

// counterBound is how many rate counters a store of maxEntries keeps:
// limiter.DefaultMaxKeys at DefaultMaxEntries, and in proportion to it.
func counterBound(maxEntries int) int {
	return int(min(max(1, int64(limiter.DefaultMaxKeys)*int64(maxEntries)/DefaultMaxEntries), math.MaxInt32))
}

// memToken is a stored token and the end of the hold BeginSpend put on it.
type memToken struct {
	token     recovery.Token
	heldUntil time.Time
}

// New returns an open, empty store holding at most maxEntries records of
// each kind (flows, tokens, security state) and reading the time from
// clock, for tests and benchmarks: it takes no part in the soft memory
// limit.
func New(maxEntries int, clock recovery.Clock) (*Store, error) {
	m := &Store{MaxEntries: maxEntries}
	if err := m.open(clock); err != nil {
		return nil, err
	}
	return m, nil
}

// open makes the empty tables of m's bound, reading the time from clock.
func (m *Store) open(clock recovery.Clock) error {
	if m.MaxEntries <= 0 {
		return errors.New("creating memory storage: max entries must be positive")
	}
	if clock == nil {
		return errors.New("creating memory storage: no clock")
	}
	m.clock = clock
	m.flows = newFlowTable(m.MaxEntries)
	m.locks = newLockTable(m.MaxEntries)
	m.counters = newCounterTable(counterBound(m.MaxEntries), false)
	m.budgets = newCounterTable(counterBound(m.MaxEntries), true)
	m.breakers = newCounterTable(breakerBound(m.MaxEntries), false)
	m.trails = newTrailTable(trailBound(m.MaxEntries))
	m.used = usedTable{ends: make(map[string]time.Time), bound: m.MaxEntries}
	// NewLRU fails only for a size below one, refused above.
	m.tokens, _ = simplelru.NewLRU[string, memToken](m.MaxEntries, nil)
	return nil
}

// Flow returns the flow with that ID, or recovery.ErrNotFound.
func (m *Store) Flow(_ context.Context, id string) (recovery.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.flow(id, m.clock.Now())
	if e == nil {
		return recovery.Flow{}, recovery.ErrNotFound
	}
	return e.flow(id), nil
}

// flow returns the live flow with that ID, dropping it if it has expired.
// The caller holds m.mu.
func (m *Store) flow(id string, now time.Time) *flowEntry {
	e := m.flows.get(id)
	if e == nil {
		return nil
	}
	if e.expired(now) {
		m.flows.remove(e)
		return nil
	}
	return e
}

// BeginSpend holds the token until now+lease and returns it:
// recovery.ErrNotFound if it is unknown, expired or spent,
// recovery.ErrBusy while an earlier hold lasts.
func (m *Store) BeginSpend(_ context.Context, hash []byte, lease time.Duration) (recovery.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	key := string(hash)
	rec, ok := m.tokens.Get(key)
	if !ok {
		return recovery.Token{}, recovery.ErrNotFound
	}
	if !now.Before(rec.token.ExpiresAt) {
		m.tokens.Remove(key)
		return recovery.Token{}, recovery.ErrNotFound
	}
	if now.Before(rec.heldUntil) {
		return recovery.Token{}, recovery.ErrBusy
	}
	rec.heldUntil = now.Add(lease)
	m.tokens.Add(key, rec)
	return cloneToken(rec.token), nil
}

// EndSpend deletes the token when spent, and otherwise lifts the hold so
// that it can be taken again. A token that is gone already is no error.
func (m *Store) EndSpend(_ context.Context, hash []byte, spent bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := string(hash)
	if spent {
		m.tokens.Remove(key)
		return nil
	}
	if rec, ok := m.tokens.Peek(key); ok {
		rec.heldUntil = time.Time{}
		m.tokens.Add(key, rec)
	}
	return nil
}

// EndRun deletes the record of kind and key and reports whether a lock was
// in force.
func (m *Store) EndRun(_ context.Context, kind, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	r := m.locks.get(lockID{kind, key}, now)
	if r == nil {
		return false, nil
	}
	m.locks.delete(r)
	return r.InForce(now), nil
}

// ListLocks returns the locks of a kind in force now, ordered by Until
// (permanent locks last) and then Key. It walks every record, which suits
// the admin API it serves.
func (m *Store) ListLocks(_ context.Context, kind string) ([]recovery.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []recovery.Lock
	for id := range m.locks.records {
		if id.kind != kind {
			continue
		}
		if r := m.locks.get(id, now); r != nil && r.InForce(now) {
			out = append(out, r.Lock)
		}
	}
	limiter.SortLocks(out)
	return out, nil
}

// putToken stores t, counting the token it lets go if the table is full.
// The caller holds m.mu.
func (m *Store) putToken(t recovery.Token) {
	if m.tokens.Add(string(t.Hash), memToken{token: cloneToken(t)}) {
		m.tokensLetGo++
	}
}

func cloneToken(t recovery.Token) recovery.Token {
	t.Hash = bytes.Clone(t.Hash)
	return t
}

// Interface guards
var (
	_ recovery.Store = (*Store)(nil)
	_ recovery.Store = (*Store)(nil)
)

// TableStats is how full one of a store's tables is, and what it did for
// room since it was made.
type TableStats struct {
	Table string // flows, tokens, security, budgets, counters or breakers
	Held  int    // records held now, ended ones not yet swept included
	Bound int    // records it holds at most
	// Refused counts what it turned away for room: starts (flows,
	// budgets) and wrong codes it could not count (security).
	Refused uint64
	// LetGo counts records dropped to make room: the cheapest runs of
	// wrong codes (security), the least recently used client counters, the
	// least recently used tokens.
	LetGo uint64
}

// Tables reports the state of each table, for metrics.
func (m *Store) Tables() []TableStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []TableStats{
		{Table: "flows", Held: m.flows.Len(), Bound: m.flows.max, Refused: m.flows.refused},
		{Table: "tokens", Held: m.tokens.Len(), Bound: m.MaxEntries, LetGo: m.tokensLetGo},
		{Table: "security", Held: m.locks.Len(), Bound: m.locks.max, Refused: m.locks.refused, LetGo: m.locks.letGo},
		{Table: "budgets", Held: m.budgets.Len(), Bound: m.budgets.bound, Refused: m.budgets.refused},
		{Table: "counters", Held: m.counters.Len(), Bound: m.counters.bound, LetGo: m.counters.letGo},
		{Table: "breakers", Held: m.breakers.Len(), Bound: m.breakers.bound, LetGo: m.breakers.letGo},
	}
}

// RunPlan runs p under the mutex, so that it is one atomic step with every
// other method. Counters live in a table of their own, which drops the
// least recently used beyond its bound (see counterTable): evicting a
// counter resets it, and never touches a flow, a token or security state.
// The conversion breaker's counters are a table of their own too
// (breakerBound), and its blocks are security state.
func (m *Store) RunPlan(_ context.Context, p *recovery.Plan) (recovery.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var o recovery.Outcome
	var e *flowEntry // the plan's flow, once read
	account := ""    // its account, for keys OfFlow
	switch p.Op {
	case recovery.OpResend, recovery.OpAttempt, recovery.OpFinish:
		at := now
		if p.Op == recovery.OpResend {
			at = p.Now
		}
		if e = m.flow(p.FlowID, at); e != nil {
			o.Flow, account = e.flow(p.FlowID), e.account()
		} else if p.Op != recovery.OpAttempt {
			o.FlowErr = recovery.ErrNotFound
			return o, nil
		}
		if e != nil && p.Op == recovery.OpResend && int(e.attempts) >= p.MaxAttempts {
			// Its attempts are spent: no code of it can be entered.
			o.FlowErr = recovery.ErrNotFound
			return o, nil
		}
		if e != nil && p.Op == recovery.OpResend && p.Now.Sub(fromNanos(e.sentAt)) < p.Interval {
			o.FlowErr = recovery.ErrTooEarly
			return o, nil
		}
	}
	if p.Op == recovery.OpCreate && !fits(&p.Flow) {
		return o, errTooLong
	}
	missing := p.Op == recovery.OpAttempt && e == nil
	key := func(k string, ofFlow bool) (string, bool) {
		if !ofFlow {
			return k, true
		}
		return account, !missing
	}
	for i, c := range p.Locks {
		k, ok := key(c.Key, c.OfFlow)
		if !ok {
			continue
		}
		if r := m.locks.get(lockID{c.Kind, k}, now); r != nil && r.InForce(now) {
			o.Refused, o.Index, o.Lock = recovery.StepLock, i, r.Lock
			return o, nil
		}
	}
	m.breakerBlocked(&p.Breaker, now, &o)
	if p.Op == recovery.OpCreate || p.NewFlowFrom != "" {
		ip := p.NewFlowFrom
		if p.Op == recovery.OpCreate {
			ip = p.Flow.ClientIP
		}
		// After the locks, before anything is counted: a start refused
		// for room costs the client and the account none of their limits.
		if at, ok := m.flows.room(m.flows.keys.of(limiter.ClientKey(ip)), now); !ok {
			o.Refused, o.RetryAt = recovery.StepFull, at
			return o, nil
		}
	}
	if at, ok := m.budgetRoom(p, key, now); !ok {
		o.Refused, o.RetryAt = recovery.StepFull, at
		return o, nil
	}
	for i, c := range p.Counts {
		k, ok := key(c.Key, c.OfFlow)
		if !ok {
			continue
		}
		if c.Soft && (o.Soft != 0 || o.Blocked) {
			continue
		}
		s := m.counterTable(c.Scope).count(m.flows.keys.scoped(c.Scope, k), c.Rate, c.Events(), now)
		switch {
		case !limiter.Refuses(c, s):
		case c.Soft:
			o.Soft, o.SoftCounter = i+1, s
		default:
			o.Refused, o.Index, o.Counter = recovery.StepCount, i, s
			return o, nil
		}
	}
	switch p.Op {
	case recovery.OpCreate:
		if err := m.flows.add(&p.Flow, now); err != nil {
			return o, err
		}
	case recovery.OpResend:
		e.setCode(p.CodeHash, p.Now, p.ExpiresAt)
		m.flows.renewed(e)
		o.Flow = e.flow(p.FlowID)
	case recovery.OpAttempt:
		if missing {
			o.FlowErr = recovery.ErrNotFound
			return o, nil
		}
		e.attempts++
		if int(e.attempts) > p.MaxAttempts {
			m.flows.remove(e)
			o.FlowErr, o.Exhausted = recovery.ErrNotFound, true
			return o, nil
		}
		o.Flow.Attempts = int(e.attempts)
	case recovery.OpFinish:
		m.flows.remove(e)
		o.Won = true
	}
	m.breakerCount(&p.Breaker, now, &o)
	for i, st := range p.Strikes {
		k, _ := key(st.Key, st.OfFlow)
		s, err := m.strike(st.Kind, k, st.Policy, now)
		if err != nil && p.Op == recovery.OpAttempt {
			// Compared all the same: a right code needs no room.
			o.Full = true
			continue
		}
		if err != nil || s.Refused {
			o.Refused, o.Index, o.Full, o.Lock = recovery.StepStrike, i, err != nil, s.Lock
			for _, done := range p.Strikes[:i] {
				dk, _ := key(done.Key, done.OfFlow)
				m.forgive(done.Kind, dk, done.Policy, now)
			}
			o.Strikes = nil
			return o, nil
		}
		o.Strikes = append(o.Strikes, s)
	}
	for _, end := range p.Ends {
		k, _ := key(end.Key, end.OfFlow)
		if end.Forgive {
			m.forgive(end.Kind, k, end.Policy, now)
		} else if r := m.locks.get(lockID{end.Kind, k}, now); r != nil {
			m.locks.delete(r)
		}
	}
	if p.Op == recovery.OpFinish {
		m.putToken(p.Token)
	}
	return o, nil
}

// budgetRoom makes room for the counters of p that are kept and new, and
// reports whether there is. The checks of a start or a resend leave an
// eighth of the table spare, for the codes of the starts they allowed:
// their phone's counter must find room, or a person would wait for a code
// that never comes. m.mu is held.
func (m *Store) budgetRoom(p *recovery.Plan, key func(string, bool) (string, bool), now time.Time) (time.Time, bool) {
	need := 0
	for _, c := range p.Counts {
		if !limiter.Kept(c.Scope) || c.Peek {
			continue
		}
		if k, ok := key(c.Key, c.OfFlow); ok && !m.budgets.holds(m.flows.keys.scoped(c.Scope, k)) {
			need++
		}
	}
	if need == 0 {
		return time.Time{}, true
	}
	spare := 0
	if len(p.Locks) > 0 {
		// A request's checks (Start) leave it; the change after them
		// (CreateFlow, ResendFlow) may take it.
		spare = m.budgets.bound / 8
	}
	return m.budgets.room(need, spare, now)
}

// strike is Strike with m.mu held.
func (m *Store) strike(kind, key string, p recovery.Policy, now time.Time) (recovery.Strike, error) {
	id := lockID{kind, key}
	r := m.locks.get(id, now)
	if r == nil {
		if !m.locks.room(now) {
			return recovery.Strike{}, recovery.ErrFull
		}
		r = m.locks.add(id)
	}
	s := limiter.Strike(p, &r.Record, now)
	r.expires = limiter.Expiry(p, r.Record)
	m.locks.changed(r)
	return s, nil
}

// forgive is Forgive with m.mu held.
func (m *Store) forgive(kind, key string, p recovery.Policy, now time.Time) {
	id := lockID{kind, key}
	r := m.locks.get(id, now)
	if r == nil {
		return
	}
	if limiter.Forgive(p, &r.Record, now) {
		m.locks.delete(r)
		return
	}
	m.locks.changed(r)
}
