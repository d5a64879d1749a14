package limiter

import (
	"context"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// PlanStore is a LockStore that also keeps the rate counters and the
// recovery flows and tokens, and runs a whole request as one Plan: the lock
// checks, the counters, the change to a flow or token and the strikes, in
// one atomic step. A Guard asks it once per request, which on a server is
// one round trip.
//
// Its counters are ulule's: a PlanStore is a ulimiter.Store, and a plan's
// Count is the step of its Get (or, peeked, its Peek) on the key
// Scope+":"+Key, the very same counter, so that the two see each other's
// events.
//
// The steps of a plan run in this order, and the first refusal ends it with
// nothing after it done:
//
//  1. the flow (OpResend, OpAttempt, OpFinish): a missing or expired flow
//     ends the plan with recovery.ErrNotFound, except for OpAttempt, which
//     still runs the lock checks and counters that do not name the flow's
//     account before it ends so; OpResend of a flow whose MaxAttempts are
//     spent ends with recovery.ErrNotFound, and inside the interval with
//     recovery.ErrTooEarly and the flow, nothing counted;
//  2. Locks, in order: a lock in force refuses; then room: a store of
//     bounded tables refuses an OpCreate (or a plan with NewFlowFrom) with
//     no room for the flow, and any plan with no room for a counter of a
//     scope that Kept reports (StepFull), before anything is counted;
//  3. Counts, in order: a peeked counter refuses once spent, a counted one
//     refuses once over its limit (the refused event counted, as ulule's
//     stores count it), and counters after a refusal are not touched; a
//     Soft counter's refusal does not refuse the plan: it is reported in
//     Outcome.Soft, and the soft counters after it are not touched;
//  4. the Op: OpCreate stores Flow; OpResend replaces the code (the interval
//     checked again); OpAttempt counts an attempt, deleting a flow over
//     MaxAttempts (recovery.ErrNotFound, Exhausted); OpFinish consumes the
//     flow (Won), and a flow already gone ends the plan unchanged;
//  5. Strikes, in order, each in one step with its key's lock: a lock in
//     force, or no room for a new record, refuses, and the strikes this plan
//     counted before it are forgiven, since no code will be compared;
//     except that for OpAttempt a strike that finds no room is not counted
//     and does not refuse (Outcome.Full): the code is compared, so that no
//     flood of security state refuses a right code, and the caller refuses
//     a wrong one;
//  6. Ends, in order: a run ended or a strike forgiven;
//  7. for OpFinish, Token stored.
type PlanStore interface {
	LockStore
	ulimiter.Store
	// RunPlan runs p in one atomic step at the store's time.
	RunPlan(ctx context.Context, p *Plan) (Outcome, error)
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

// Plan is one request's work for a PlanStore. A key with OfFlow set is the
// account of the plan's flow, which the store reads: the caller of /resend
// and /verify knows only the flow ID.
type Plan struct {
	Locks   []LockCheck
	Counts  []Count
	Op      Op
	Strikes []StrikeStep
	Ends    []EndStep

	// NewFlowFrom is the client IP of a start whose flow is stored after
	// the plan (Guard.Start): a store of bounded flows refuses the plan
	// with StepFull, before anything is counted, when it would refuse
	// that flow, as it does an OpCreate's.
	NewFlowFrom string

	Flow        recovery.Flow // OpCreate
	FlowID      string        // OpResend, OpAttempt, OpFinish
	MaxAttempts int           // OpAttempt, OpResend (a flow with as many attempts is spent)
	// OpResend: the new code's hash, the time the caller read, the least
	// time between codes and the new code's expiry.
	CodeHash  []byte
	Now       time.Time
	Interval  time.Duration
	ExpiresAt time.Time
	Token     recovery.Token // OpFinish
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
}

// Kept reports whether the counters of scope are budgets that span
// clients (start_account, start_phone, sms_global), which no churn of a
// bounded store may hand back. A client's own counters (start_ip,
// verify_ip), and any other, may be dropped: that hands the client back
// its own budget and nothing else.
func Kept(scope string) bool {
	return scope == ScopeStartAccount || scope == ScopeStartPhone || scope == ScopeSMSGlobal
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

// Step names the step of a plan that refused it.
type Step uint8

// Steps that refuse.
const (
	StepNone   Step = iota
	StepLock        // Outcome.Lock is in force
	StepCount       // Outcome.Counter is spent
	StepStrike      // Outcome.Lock is in force, or Outcome.Full
	// StepFull: no room for the flow of an OpCreate, or for a counter that
	// is never dropped (Kept), before anything was counted; the
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
	RetryAt     time.Time     // StepFull: when the store may have room again
	Strikes     []Strike      // the strikes counted, in order (none forgiven since)
	Flow        recovery.Flow // the plan's flow: as read, or after its change
	// FlowErr is recovery.ErrNotFound for a missing, expired or exhausted
	// flow, recovery.ErrTooEarly for a resend inside the interval.
	FlowErr   error
	Exhausted bool // OpAttempt deleted the flow: its attempts ran out
	Won       bool // OpFinish consumed the flow
}

// Refuses reports whether the counter in state s, after c's event was
// counted or, for a peek, read, refuses it.
func (c Count) Refuses(s ulimiter.Context) bool {
	if c.Peek {
		return s.Remaining == 0
	}
	return s.Reached
}

// DefaultMaxKeys is the bound on the client counters a memory store keeps
// at its default size. A counter costs about 80 bytes with its share of the
// index; 250,000 still cover tens of thousands of recoveries an hour.
const DefaultMaxKeys = 250_000
