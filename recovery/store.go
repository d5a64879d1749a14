package recovery

import (
	"context"
	"time"

	ulimiter "github.com/ulule/limiter/v3"
)

// Store keeps flows, tokens, the rate counters and the security state
// behind locks, and runs a whole request as one Plan: the lock
// checks, the counters, the change to a flow or token and the strikes, in
// one atomic step. A Guard asks it once per request, which on a server is
// one round trip.
//
// Its counters are ulule's: a Store is a ulimiter.Store, and a plan's
// Count is the step of its Get (or, peeked, its Peek) on the key
// Scope+":"+Key, the very same counter, so that the two see each other's
// events.
//
// The steps of a plan run in this order, and the first refusal ends it with
// nothing after it done:
//
//  1. the flow (OpResend, OpAttempt, OpFinish): a missing or expired flow
//     ends the plan with ErrNotFound, except for OpAttempt, which
//     still runs the lock checks and counters that do not name the flow's
//     account before it ends so; OpResend of a flow whose MaxAttempts are
//     spent ends with ErrNotFound, and inside the interval with
//     ErrTooEarly and the flow, nothing counted;
//  2. Locks, in order: a lock in force refuses; then the Breaker's block,
//     which refuses the plan's code but not the plan (Outcome.Blocked);
//     then room: a store of
//     bounded tables refuses an OpCreate (or a plan with NewFlowFrom) with
//     no room for the flow, and any plan with no room for a counter of a
//     scope that Kept reports (StepFull), before anything is counted;
//  3. Counts, in order: a peeked counter refuses once spent, a counted one
//     refuses once over its limit (the refused event counted, as ulule's
//     stores count it), and counters after a refusal are not touched; a
//     Soft counter's refusal does not refuse the plan: it is reported in
//     Outcome.Soft, and the soft counters after it are not touched, nor
//     any while the Breaker's block refuses the code;
//  4. the Op: OpCreate stores Flow; OpResend replaces the code (the interval
//     checked again); OpAttempt counts an attempt, deleting a flow over
//     MaxAttempts (ErrNotFound, Exhausted); OpFinish consumes the
//     flow (Won), and a flow already gone ends the plan unchanged; then the
//     Breaker counts the code sent (BreakerSend: when nothing refused it)
//     or entered (BreakerEntered: when the plan consumed the flow);
//  5. Strikes, in order, each in one step with its key's lock: a lock in
//     force, or no room for a new record, refuses, and the strikes this plan
//     counted before it are forgiven, since no code will be compared;
//     except that for OpAttempt a strike that finds no room is not counted
//     and does not refuse (Outcome.Full): the code is compared, so that no
//     flood of security state refuses a right code, and the caller refuses
//     a wrong one;
//  6. Ends, in order: a run ended or a strike forgiven;
//  7. for OpFinish, Token stored.
type Store interface {
	ulimiter.Store
	// RunPlan runs p in one atomic step at the store's time.
	RunPlan(ctx context.Context, p *Plan) (Outcome, error)
	// Flow returns a flow without changing it.
	Flow(ctx context.Context, id string) (Flow, error)
	// BeginSpend takes a token for one reset attempt: ErrNotFound if it is
	// unknown, expired or spent, ErrBusy while another attempt holds it. The
	// hold ends by itself after lease.
	BeginSpend(ctx context.Context, hash []byte, lease time.Duration) (Token, error)
	// EndSpend ends the attempt begun with BeginSpend: spent deletes the
	// token for good; otherwise it can be taken again.
	EndSpend(ctx context.Context, hash []byte, spent bool) error
	// EndRun deletes the record of kind and key: its strikes and any lock.
	// It reports whether a lock was in force.
	EndRun(ctx context.Context, kind, key string) (bool, error)
	// ListLocks returns the locks of a kind in force now, ordered by Until
	// (permanent locks last) and then Key.
	ListLocks(ctx context.Context, kind string) ([]Lock, error)
	// Impose locks kind and key for d, or until EndRun when d is 0, as
	// limiter.Impose does, in one atomic step: of concurrent calls on a key
	// with no lock in force, exactly one reports the lock set. It returns
	// the lock now in force. A key the store does not hold needs room: when
	// there is none, ErrFull.
	Impose(ctx context.Context, kind, key string, d time.Duration) (lock Lock, set bool, err error)
	// UseOnce marks the single-use key (a not-me link's NotMe.Key) used
	// until until, in one atomic step, and reports whether this call did:
	// of concurrent calls on a key, exactly one reports first. The mark is
	// security state: it is never evicted before until, and a store with
	// no room for it refuses with ErrFull rather than forget one.
	UseOnce(ctx context.Context, key string, until time.Time) (first bool, err error)
	// Used reports whether key is marked used by UseOnce, without changing
	// anything.
	Used(ctx context.Context, key string) (bool, error)
}

// Op is the change to a flow or token that a plan makes once its checks pass.
type Op uint8

// Ops of a Plan.
const (
	OpNone    Op = iota // checks and counts only
	OpCreate            // store Plan.Flow
	OpResend            // replace the code of Plan.FlowID
	OpAttempt           // count an attempt on Plan.FlowID
	OpFinish            // consume Plan.FlowID and store Plan.Token
)

// Plan is one request's work for a Store. A key with OfFlow set is the
// account of the plan's flow, which the store reads: the caller of /resend
// and /verify knows only the flow ID.
type Plan struct {
	Locks   []LockCheck
	Counts  []Count
	Op      Op
	Strikes []StrikeStep
	Ends    []EndStep
	// Breaker is the conversion breaker of the destination prefix of the
	// plan's code, or of its flow; none while its Key is empty.
	Breaker BreakerStep

	// NewFlowFrom is the client IP of a start whose flow is stored after
	// the plan (Guard.Start): a store of bounded flows refuses the plan
	// with StepFull, before anything is counted, when it would refuse
	// that flow, as it does an OpCreate's.
	NewFlowFrom string

	Flow        Flow   // OpCreate
	FlowID      string // OpResend, OpAttempt, OpFinish
	MaxAttempts int    // OpAttempt, OpResend (a flow with as many attempts is spent)
	// OpResend: the new code's hash, the time the caller read, the least
	// time between codes and the new code's expiry.
	CodeHash  []byte
	Now       time.Time
	Interval  time.Duration
	ExpiresAt time.Time
	Token     Token // OpFinish
}

// LockCheck refuses the plan while the lock of Kind on Key is in force.
type LockCheck struct {
	Kind, Key string
	OfFlow    bool
}

// Count is one of ulule's fixed-window counters, as a limiter.Store keeps
// it: Rate.Limit events per Rate.Period, the window opening at the first
// event of the key Scope+":"+Key, which is also the counter's key in the
// store's ulimiter.Store methods. Peek reads it without counting and
// refuses once Rate.Limit events were counted.
//
// A store of bounded tables never drops a counter of a scope that Kept
// reports while its window is open, and refuses the plan (StepFull) when
// it has no room for it.
type Count struct {
	Scope, Key string
	OfFlow     bool
	Rate       ulimiter.Rate
	Peek       bool
	// Soft: a refusal skips the soft counters after this one and is
	// reported in Outcome.Soft; the plan goes on.
	Soft bool
	// N is how many events a count adds, 0 meaning 1: a weighted event,
	// such as an SMS counted at its price. It refuses once the counter
	// passes Rate.Limit, the refused events counted.
	N int64
}

// Events is how many events c adds: none for a peek, N or else 1.
func (c Count) Events() int64 {
	switch {
	case c.Peek:
		return 0
	case c.N > 0:
		return c.N
	}
	return 1
}

// StrikeStep counts a strike against Kind and Key under Policy.
type StrikeStep struct {
	Kind, Key string
	OfFlow    bool
	Policy    Policy
}

// EndStep ends the run of Kind and Key, or with Forgive takes one strike
// back under Policy.
type EndStep struct {
	Kind, Key string
	OfFlow    bool
	Forgive   bool
	Policy    Policy
}

// BreakerStep is the conversion breaker of one destination prefix (see
// DestinationPrefix): the codes sent to numbers under Key in a window of
// Rule.Window, the codes entered, and the block they trip, a lock of
// KindPrefix on Key whose strikes are the trips, under Policy.
//
// For BreakerSend and BreakerPeek, the block in force refuses the plan's
// code: Outcome.Blocked, and no soft counter is touched. Otherwise, after
// the op, a BreakerSend whose code no soft counter refused counts it as
// sent: the first code of a window opens it afresh, entered codes
// included; once the window's codes trip Rule (limiter.Trips), one strike
// under Policy blocks the prefix, this code refused too (Outcome.Tripped),
// and the window is closed. A BreakerPeek counts nothing: a decoy's code,
// or a notice, which is never entered. A BreakerEntered counts a code
// entered, when the plan consumed its flow.
type BreakerStep struct {
	Key    string
	Mode   BreakerMode
	Rule   BreakerRule
	Policy Policy
}

// BreakerMode is what a BreakerStep counts.
type BreakerMode uint8

// Modes of a BreakerStep.
const (
	BreakerSend    BreakerMode = iota // a code about to be sent
	BreakerPeek                       // a message that is checked, not counted
	BreakerEntered                    // a code entered
)

// BreakerRule says when the codes of one window trip a prefix's block: at
// least MinSent codes were sent and at most MaxEntered percent of them
// entered.
type BreakerRule struct {
	Window     time.Duration
	MinSent    int64
	MaxEntered int64
}

// Step names the step of a plan that refused it.
type Step uint8

// Steps that refuse.
const (
	StepNone   Step = iota
	StepLock        // Outcome.Lock is in force
	StepCount       // Outcome.Counter is spent
	StepStrike      // Outcome.Lock is in force, or Outcome.Full
	// StepFull: no room for the flow of an OpCreate, or for a counter that
	// is never dropped (limiter.Kept), before anything was counted; the
	// store holds every one it has until Outcome.RetryAt at least.
	StepFull
)

// Outcome is what a plan did.
type Outcome struct {
	// Refused is the step that refused the plan, and Index its place in
	// that step's list; StepNone when nothing refused.
	Refused Step
	Index   int
	Lock    Lock             // the lock that refused (StepLock, StepStrike)
	Full    bool             // StepStrike, or OpAttempt: no room for a new record
	Counter ulimiter.Context // the counter that refused (StepCount)
	// Soft is 1 + the index in Plan.Counts of the soft counter that
	// refused, in the state SoftCounter, or 0.
	Soft        int
	SoftCounter ulimiter.Context
	RetryAt     time.Time // StepFull: when the store may have room again
	Strikes     []Strike  // the strikes counted, in order (none forgiven since)
	Flow        Flow      // the plan's flow: as read, or after its change
	// FlowErr is ErrNotFound for a missing, expired or exhausted
	// flow, ErrTooEarly for a resend inside the interval.
	FlowErr   error
	Exhausted bool // OpAttempt deleted the flow: its attempts ran out
	Won       bool // OpFinish consumed the flow
	// Blocked: the Breaker's block refused the plan's code, a block in
	// force or, with Tripped, one this code set; Block is that block.
	Blocked, Tripped bool
	Block            Lock
}

// Lock kinds.
const (
	KindAccount = "account" // the recovery route of one account is locked
	KindIP      = "ip"      // one client IP (or IPv6 /64) is blocked
	KindPrefix  = "prefix"  // the codes to one destination prefix are blocked
)

// Lock is a lock on an account's recovery or a block of a client IP, and the
// wrong codes behind it.
type Lock struct {
	Kind  string    `json:"kind"`
	Key   string    `json:"key"`
	Until time.Time `json:"until,omitzero"` // the lock's end; for a permanent lock, the zero time
	Since time.Time `json:"since"`
	// Permanent is a lock that ends only when support lifts it.
	Permanent bool `json:"permanent,omitempty"`
	// Strikes counts the wrong codes behind the lock: in a row, for an
	// account; in the current window, for a client. For a prefix, it
	// counts its blocks since support last lifted one.
	Strikes int64 `json:"strikes"`
	// Locks counts the locks set in a row, this one included. A lock
	// support imposed is not counted: it lengthens no lock after it.
	Locks int64 `json:"locks"`
	// Reason says what set the lock: ReasonSupport for one imposed through
	// Store.Impose, which stores keep; ReasonWrongCodes, which
	// Guard.Locks fills in, for the rest.
	Reason string `json:"reason,omitempty"`
	// Country is the country of a prefix's block (PrefixCountry), which
	// Guard.Locks fills in.
	Country string `json:"country,omitempty"`
}

// Reasons of a lock.
const (
	ReasonWrongCodes = "wrong_codes" // a lockout or an IP block, set by wrong codes
	ReasonSupport    = "support"     // imposed by support, through the admin API
	// ReasonLowConversion is a prefix's block: its codes went out, but
	// too few were entered (BreakerStep).
	ReasonLowConversion = "low_conversion"
)

// InForce reports whether l holds at now.
func (l Lock) InForce(now time.Time) bool {
	return l.Permanent || now.Before(l.Until)
}

// Policy says how strikes against one kind of key become locks.
//
// A strike is one code about to be compared, or a prefix's trip. Strikes
// falling in one fixed Window that reach Threshold set a lock; the next
// strike after it opens a new window. The first lock lasts Duration and
// each further lock of the same run Growth times (0: twice) as long as the
// one before, up to MaxDuration. With Run
// set, the strikes in a row are kept, across windows and locks, until the
// run is ended (a correct code, or support lifting the lock), and when they
// reach Permanent the lock holds until then. Without Run, a key's record
// ends with its window and its lock.
type Policy struct {
	Threshold   int64
	Window      time.Duration
	Duration    time.Duration
	MaxDuration time.Duration
	Run         bool
	Permanent   int64 // 0: never permanent
	Growth      int64 // 0: 2
}

// Strike is the outcome of one strike of a plan (StrikeStep).
type Strike struct {
	// Refused is true when a lock was in force already: nothing was counted.
	Refused bool
	// Set is true when this strike set the lock.
	Set bool
	// Lock is the key's record after the strike; when Refused or Set, the
	// lock in force.
	Lock Lock
}

// Record is what a Store keeps for one key: its lock, if any, and the
// strikes counted towards the next.
type Record struct {
	Lock
	InWindow  int64     // strikes in the current window
	WindowEnd time.Time // the end of the current window
}
