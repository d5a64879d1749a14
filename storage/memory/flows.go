package memory

import (
	"errors"
	"math"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// flowTable holds at most max flows, and never drops a live one to make
// room: a flow acknowledged with 202 lives its whole code_ttl, whatever
// traffic comes after it (SPEC §4). When the table is full, a new flow is
// refused (ErrFull, with the time the soonest flow ends) once the expired
// flows are gone; from highWater on, a client (an IPv4 address or an IPv6
// /64, as limiter.ClientKey groups them) that holds as many flows as the
// client holding the most, one or more, is refused too. So a flood of many
// addresses meets refusals at its biggest holders first, and the last
// eighth of the table stays for clients that hold none, as a person who has
// not started yet does. What is refused depends only on who started the
// flows and when, never on whether their account exists.
//
// A flow is kept as a compact record (flowEntry): flows and clients are
// keyed by hkeys of their ID and client key, and a flow's own strings share
// one allocation, so that a full table of the default 100,000 flows stays
// near 30 MiB (BenchmarkMemoryFlood).
//
// It is not safe for concurrent use; Store guards it with its mutex.
type flowTable struct {
	max     int
	keys    hasher
	byID    map[hkey]*flowEntry
	clients map[hkey]*clientFlows
	// byCount[n] lists the clients with n flows, in the order they came
	// to hold n; top is the largest n in use.
	byCount []list[clientFlows]
	top     int
	// all lists every flow, the soonest to end first.
	all list[flowEntry]
	// refused counts the flows refused for room.
	refused uint64
}

// errTooLong refuses a flow with a string too long for its record.
var errTooLong = errors.New("storing flow: account, code hash, client IP or masked phone over 64 KiB")

// flowEntry is one flow, linked into the list of all flows. The flow's ID
// is not kept, only its hkey: every read names it. Times are Unix
// nanoseconds (noTime for the zero time).
type flowEntry struct {
	id hkey
	// text holds the account, the code's hash, the client's IP, the
	// masked phone and the destination prefix, in that order, with the
	// first four lengths in lens.
	text                         string
	lens                         [4]uint16
	decoy                        bool
	attempts, sends              int32
	lang, publicURL              string // from the configuration, shared
	sentAt, expiresAt, createdAt int64
	client                       *clientFlows
	//lint:ignore U1000 used through element[T], which staticcheck does not follow
	links[flowEntry] // in the table's all
}

// noTime stands for the zero time.Time in a flowEntry.
const noTime = math.MinInt64

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// maxText bounds each of the strings a flowEntry counts the length of.
const maxText = math.MaxUint16

// newFlowEntry returns the record of f, or false if one of its strings is
// too long to keep.
func newFlowEntry(id hkey, f *recovery.Flow) (*flowEntry, bool) {
	e := &flowEntry{
		id: id, decoy: f.Decoy, attempts: int32(min(f.Attempts, math.MaxInt32)), sends: int32(min(f.Sends, math.MaxInt32)),
		lang: f.Lang, publicURL: f.PublicURL,
		sentAt: nanos(f.SentAt), expiresAt: nanos(f.ExpiresAt), createdAt: nanos(f.CreatedAt),
	}
	return e, e.setText(f.Account, f.CodeHash, f.ClientIP, f.PhoneMasked, f.Prefix)
}

// fits reports whether f's strings fit a flowEntry.
func fits(f *recovery.Flow) bool { return fitText(f.Account, f.CodeHash, f.ClientIP, f.PhoneMasked) }

// fitText reports whether the strings whose lengths a flowEntry counts fit.
func fitText(account string, codeHash []byte, ip, phone string) bool {
	return len(account) <= maxText && len(codeHash) <= maxText && len(ip) <= maxText && len(phone) <= maxText
}

func (e *flowEntry) setText(account string, codeHash []byte, ip, phone, prefix string) bool {
	if !fitText(account, codeHash, ip, phone) {
		return false
	}
	b := make([]byte, 0, len(account)+len(codeHash)+len(ip)+len(phone)+len(prefix))
	b = append(append(append(append(append(b, account...), codeHash...), ip...), phone...), prefix...)
	e.text = string(b)
	e.lens = [4]uint16{uint16(len(account)), uint16(len(codeHash)), uint16(len(ip)), uint16(len(phone))}
	return true
}

func (e *flowEntry) account() string { return e.text[:e.lens[0]] }

func (e *flowEntry) codeHash() string {
	return e.text[e.lens[0] : int(e.lens[0])+int(e.lens[1])]
}

func (e *flowEntry) clientIP() string {
	at := int(e.lens[0]) + int(e.lens[1])
	return e.text[at : at+int(e.lens[2])]
}

func (e *flowEntry) phone() string {
	at := int(e.lens[0]) + int(e.lens[1]) + int(e.lens[2])
	return e.text[at : at+int(e.lens[3])]
}

func (e *flowEntry) prefix() string {
	return e.text[int(e.lens[0])+int(e.lens[1])+int(e.lens[2])+int(e.lens[3]):]
}

// expired reports whether the flow has expired at now.
func (e *flowEntry) expired(now time.Time) bool { return now.UnixNano() >= e.expiresAt }

// setCode replaces the code, as a resend at now does.
func (e *flowEntry) setCode(codeHash []byte, now, expiresAt time.Time) {
	// The account and IP already fit, and a code's hash is a few dozen bytes.
	e.setText(e.account(), codeHash, e.clientIP(), e.phone(), e.prefix())
	e.sentAt, e.expiresAt = nanos(now), nanos(expiresAt)
	e.sends++
}

// flow returns the flow the record holds, whose ID is id.
func (e *flowEntry) flow(id string) recovery.Flow {
	var code []byte
	if e.lens[1] > 0 {
		code = []byte(e.codeHash())
	}
	return recovery.Flow{
		ID: id, Account: e.account(), CodeHash: code,
		Attempts: int(e.attempts), Sends: int(e.sends), Decoy: e.decoy, Lang: e.lang,
		SentAt: fromNanos(e.sentAt), ExpiresAt: fromNanos(e.expiresAt), CreatedAt: fromNanos(e.createdAt),
		ClientIP: e.clientIP(), PublicURL: e.publicURL, PhoneMasked: e.phone(), Prefix: e.prefix(),
	}
}

// clientFlows counts one client's flows.
type clientFlows struct {
	key hkey
	n   int
	//lint:ignore U1000 used through element[T], which staticcheck does not follow
	links[clientFlows] // in byCount[n]
}

func newFlowTable(max int) *flowTable {
	return &flowTable{
		max:     max,
		keys:    newHasher(),
		byID:    make(map[hkey]*flowEntry),
		clients: make(map[hkey]*clientFlows),
		byCount: make([]list[clientFlows], 1),
	}
}

// Len returns how many flows the table holds, expired ones included.
func (t *flowTable) Len() int { return len(t.byID) }

// get returns the entry of a flow, or nil.
func (t *flowTable) get(id string) *flowEntry { return t.byID[t.keys.of(id)] }

// add stores f, replacing any flow with its ID. A flow whose account, code
// hash or client IP is over 64 KiB is refused, and so is one that finds no
// room (see room).
func (t *flowTable) add(f *recovery.Flow, now time.Time) error {
	id := t.keys.of(f.ID)
	e, ok := newFlowEntry(id, f)
	if !ok {
		return errTooLong
	}
	if old := t.byID[id]; old != nil {
		t.remove(old)
	}
	key := t.keys.of(limiter.ClientKey(f.ClientIP))
	if _, ok := t.room(key, now); !ok {
		return recovery.ErrFull
	}
	c := t.clients[key]
	if c == nil {
		c = &clientFlows{key: key}
		t.clients[key] = c
	}
	e.client = c
	t.byID[id] = e
	push(&t.all, e)
	t.recount(c, c.n+1)
	return nil
}

// highWater is the share of the table past which clients holding the most
// flows are refused: the last eighth is kept for clients holding none.
func (t *flowTable) highWater() int { return t.max - t.max/8 }

// room reports whether the client of key may add a flow at now, after
// dropping the flows that have expired; if not, it also returns when the
// soonest flow ends. The list of all flows is kept in order of expiry, so
// the expired ones are at its front.
func (t *flowTable) room(key hkey, now time.Time) (time.Time, bool) {
	for o := t.all.first; o != nil && o.expired(now); o = t.all.first {
		t.remove(o)
	}
	n := len(t.byID)
	if n < t.highWater() {
		return time.Time{}, true
	}
	held := 0
	if c := t.clients[key]; c != nil {
		held = c.n
	}
	if n < t.max && (held == 0 || held < t.top) {
		return time.Time{}, true
	}
	t.refused++
	return fromNanos(t.all.first.expiresAt), false
}

// renewed moves e, whose expiry a resend pushed back, to the end of the
// list of all flows, which keeps it in order of expiry (flows of one
// code_ttl; a table shared by sites of different code_ttl is in that order
// within each, and an expired flow behind a live one waits for it).
func (t *flowTable) renewed(e *flowEntry) {
	unlink(&t.all, e)
	push(&t.all, e)
}

// remove deletes an entry.
func (t *flowTable) remove(e *flowEntry) {
	delete(t.byID, e.id)
	unlink(&t.all, e)
	c := e.client
	t.recount(c, c.n-1)
	if c.n == 0 {
		delete(t.clients, c.key)
	}
}

// recount moves c to the bucket of clients with n flows.
func (t *flowTable) recount(c *clientFlows, n int) {
	if c.n > 0 {
		unlink(&t.byCount[c.n], c)
	}
	c.n = n
	if n > 0 {
		for len(t.byCount) <= n {
			t.byCount = append(t.byCount, list[clientFlows]{})
		}
		push(&t.byCount[n], c)
	}
	// Raise top first: c's bucket is not empty, so the walk down stops
	// there at the latest, after at most one step when c left the top.
	t.top = max(t.top, n)
	for t.top > 0 && t.byCount[t.top].first == nil {
		t.top--
	}
}
