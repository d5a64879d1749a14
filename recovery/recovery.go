package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outcomes that callers branch on.
// ScopeRoom is the Denial.Scope of an ErrFull for want of room for a new
// flow or budget, rather than for security state.
const ScopeRoom = "room"

var (
	// ErrInvalidRequest is a malformed account, flow ID, code or token.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidCode is a wrong code; the flow stays alive if attempts are left.
	ErrInvalidCode = errors.New("invalid code")
	// ErrExpired is an unknown, used, expired or exhausted flow.
	ErrExpired = errors.New("flow expired")
	// ErrInvalidToken is an unknown, expired, used or busy reset token.
	ErrInvalidToken = errors.New("invalid reset token")
	// ErrRateLimited is a request over one of the configured limits.
	ErrRateLimited = errors.New("rate limited")
	// ErrLocked is an account whose recovery is temporarily locked.
	ErrLocked = errors.New("account locked")
	// ErrBlocked is a client IP temporarily blocked from the recovery routes.
	ErrBlocked = errors.New("ip blocked")
	// ErrFull is security state (locks, blocks and the wrong codes behind
	// them) with no room for another record: rather than forget any, the
	// request that would add one is refused.
	ErrFull = errors.New("no room for security state")
	// ErrUnavailable is a dependency (storage, directory) that cannot answer.
	// The request may or may not have taken effect, and retrying it is safe.
	ErrUnavailable = errors.New("service unavailable")
	// ErrStateLost is a store whose server lost its state (locks, runs of
	// wrong codes, counts) and that refuses work until an operator
	// acknowledges it: what was lost cannot be trusted to be gone. A store
	// returns it together with ErrUnavailable.
	ErrStateLost = errors.New("storage lost its state")

	// ErrNotFound is returned by a Store for a missing or expired record.
	ErrNotFound = errors.New("not found")
	// ErrTooEarly is returned by Store.Resend inside the resend interval.
	ErrTooEarly = errors.New("too early")
	// ErrExhausted is returned by a FlowGuard for a flow whose attempts ran
	// out with this one, which deleted it. It is an ErrNotFound.
	ErrExhausted = fmt.Errorf("%w: attempts exhausted", ErrNotFound)
	// ErrBusy is returned by Store.BeginSpend while another request holds the token.
	ErrBusy = errors.New("token in use")
	// ErrUnknownAccount is returned by a Directory for an account it does not know
	// or that has no phone number.
	ErrUnknownAccount = errors.New("unknown account")
	// ErrQueueFull is returned by a Sender that cannot take another message now.
	ErrQueueFull = errors.New("sms queue full")
)

// Denial is a request refused by the abuse layer. It unwraps to ErrRateLimited,
// ErrLocked, ErrBlocked or ErrFull.
type Denial struct {
	Reason     error         // ErrRateLimited, ErrLocked, ErrBlocked or ErrFull
	Scope      string        // the limit that was hit, e.g. "start_ip", "lockout", "ip_block"
	RetryAfter time.Duration // how long until the request may succeed
	Limit      int64         // the limit's size, for RateLimit-* headers (0 if none)
	Remaining  int64         // what is left of the limit
	Reset      time.Time     // when the limit's window ends
	Permanent  bool          // a lock that only support can lift
}

func (d *Denial) Error() string {
	return fmt.Sprintf("%v (%s, retry after %s)", d.Reason, d.Scope, d.RetryAfter.Round(time.Second))
}

func (d *Denial) Unwrap() error { return d.Reason }

// CodeError is a wrong code. It unwraps to ErrInvalidCode.
type CodeError struct {
	AttemptsLeft int
}

func (e *CodeError) Error() string {
	return fmt.Sprintf("invalid code, %d attempts left", e.AttemptsLeft)
}

func (e *CodeError) Unwrap() error { return ErrInvalidCode }

// Flow is one recovery attempt for one account, as stored.
type Flow struct {
	ID          string    `json:"id"`
	Account     string    `json:"account"`   // normalised account name
	CodeHash    []byte    `json:"code_hash"` // keyed hash of the current code
	Attempts    int       `json:"attempts"`  // wrong or right codes tried so far
	Sends       int       `json:"sends"`     // codes sent so far (1 after start)
	Decoy       bool      `json:"decoy"`     // no SMS was sent; never verifies
	Lang        string    `json:"lang,omitempty"`
	SentAt      time.Time `json:"sent_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	CreatedAt   time.Time `json:"created_at"`
	ClientIP    string    `json:"client_ip,omitempty"` // the IP that started the flow
	PublicURL   string    `json:"public_url,omitempty"`
	PhoneMasked string    `json:"phone_masked,omitempty"`
}

// Token is a reset token, as stored: only its keyed hash is kept.
type Token struct {
	Hash      []byte    `json:"hash"`
	Account   string    `json:"account"`
	FlowID    string    `json:"flow_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Store keeps flows and tokens. Every method is atomic with respect to the
// others: implementations for several processes (Redis) do the read-modify-
// write on the server. Expired records behave as missing (ErrNotFound).
type Store interface {
	// CreateFlow stores a new flow until f.ExpiresAt.
	CreateFlow(ctx context.Context, f Flow) error
	// Flow returns a flow without changing it.
	Flow(ctx context.Context, id string) (Flow, error)
	// Attempt counts one verification attempt and returns the flow with the
	// count included. A flow whose count would exceed maxAttempts is deleted
	// and ErrNotFound returned, so no caller ever compares past the limit.
	Attempt(ctx context.Context, id string, maxAttempts int) (Flow, error)
	// ConsumeFlow deletes a flow and reports whether this call deleted it:
	// of several concurrent callers exactly one gets true.
	ConsumeFlow(ctx context.Context, id string) (bool, error)
	// Resend replaces the code of a flow when at least interval has passed
	// since f.SentAt, setting SentAt to now, ExpiresAt to expiresAt and
	// incrementing Sends. Inside the interval it returns the unchanged flow
	// and ErrTooEarly.
	Resend(ctx context.Context, id string, codeHash []byte, now time.Time, interval time.Duration, expiresAt time.Time) (Flow, error)
	// PutToken stores a reset token until t.ExpiresAt.
	PutToken(ctx context.Context, t Token) error
	// BeginSpend takes a token for one reset attempt: ErrNotFound if it is
	// unknown, expired or spent, ErrBusy while another attempt holds it. The
	// hold ends by itself after lease.
	BeginSpend(ctx context.Context, hash []byte, lease time.Duration) (Token, error)
	// EndSpend ends the attempt begun with BeginSpend: spent deletes the
	// token for good; otherwise it can be taken again.
	EndSpend(ctx context.Context, hash []byte, spent bool) error
}

// Entry is what a Directory knows of an account.
type Entry struct {
	Phone string // as the directory has it; checked by a PhonePolicy before use
	Lang  string // preferred language (BCP 47 primary tag), optional
}

// Directory finds the phone number of an account. It returns
// ErrUnknownAccount when it has none, and another error when it cannot tell.
type Directory interface {
	Lookup(ctx context.Context, account string) (Entry, error)
}

// PhonePolicy decides whether a number may receive a code. It returns the
// number in E.164 form, or an error saying why it must not be texted.
type PhonePolicy interface {
	Check(phone string) (string, error)
}

// Message is one SMS.
type Message struct {
	Kind      string // "code" or "notice"
	To        string // E.164
	Body      string // exact text
	Reference string // traces the message without the phone number
	// Masked is To masked with MaskPhone, when the caller has it already;
	// otherwise the sender masks To for its reports.
	Masked    string
	Validity  time.Duration // how long the text is useful; 0 for no limit
	ExpiresAt time.Time     // after this there is no point in delivering it
	// Admit, when set, is asked once just before the first delivery
	// attempt; if it returns an error the message is dropped, not sent.
	Admit func(context.Context) error
	// Decoy marks the stand-in message of an account without a phone. It is
	// queued like any other, so that a request costs the same whatever the
	// account, and the queue drops it unseen: no delivery, no report.
	Decoy bool
}

// Sender delivers SMS. Send must not block on the network: senders used by
// the flow are queues that deliver in the background. It returns
// ErrQueueFull when it cannot take the message.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Guard is the abuse layer: rate limits, account locks and IP blocks.
// Refusals are *Denial errors; other errors mean the guard cannot decide
// and the request fails closed.
type Guard interface {
	// Start is asked before a flow is started for account from ip.
	Start(ctx context.Context, ip, account string) error
	// SMS is asked just before a message goes to a phone, identified by a
	// keyed hash (Keyring.PhoneKey). A refusal drops the message silently,
	// so that it tells the client nothing about the account.
	SMS(ctx context.Context, phoneKey string) error
	// Verify is asked before a flow's attempt is counted. It refuses a
	// blocked client or a locked account early and counts the request
	// against the client's limit.
	Verify(ctx context.Context, ip, account string) error
	// Guess counts a code that is about to be compared against the client
	// and the account, in one atomic step with checking their locks, so
	// that concurrent guesses never pass a lockout threshold. A lock or
	// block in force refuses the guess with a *Denial; what the guess
	// itself set is in the Guess and stands if the code is wrong.
	Guess(ctx context.Context, ip, account string) (Guess, error)
	// Right follows a Guess whose code was right: the account's run of
	// wrong codes ends, a lock its guess set with it, and the client's
	// strike is taken back.
	Right(ctx context.Context, ip, account string) error
}

// FlowGuard is a Guard that makes a request's checks and its change to a
// Store in one atomic step: on a shared server, one round trip instead of
// one for each. The Service uses it, instead of the Guard and Store calls it
// stands for, when Keeps(store) says that its changes go to that store. Each
// method is atomic as a whole, so every invariant of the calls it replaces
// holds as strongly: attempts counted before comparison, a flow consumed
// once, no guess past a threshold.
type FlowGuard interface {
	Guard
	// Keeps reports whether the guard's changes go to s.
	Keeps(s Store) bool
	// StartFlow is Start and then Store.CreateFlow(f): f is stored only
	// when the start is allowed.
	StartFlow(ctx context.Context, ip string, f Flow) error
	// ResendFlow is Start for the account of the flow and then
	// Store.Resend: ErrNotFound for a missing or expired flow or one with
	// maxAttempts attempts spent, ErrTooEarly with the flow inside the
	// interval (neither counted), a *Denial, or the flow with its new code.
	ResendFlow(ctx context.Context, ip, id string, codeHash []byte, now time.Time, interval time.Duration, expiresAt time.Time, maxAttempts int) (Flow, error)
	// VerifyFlow is Verify (for the flow's account, or for none when the
	// flow is missing), then Store.Attempt and Guess: ErrNotFound for a
	// missing or expired flow, ErrExhausted (with the flow as it was) when
	// this attempt was one too many, a *Denial (with the flow, if it was
	// found), or the flow with the attempt counted and the Guess.
	VerifyFlow(ctx context.Context, ip, id string, maxAttempts int) (Flow, Guess, error)
	// RightFlow follows a VerifyFlow whose code was right: it consumes the
	// flow, and only if this call did, it is Right and Store.PutToken(t).
	// It reports whether this call consumed the flow.
	RightFlow(ctx context.Context, ip, id string, t Token) (bool, error)
}

// Guess is a code counted against the abuse layer before it is compared.
type Guess struct {
	// Set holds the block and the lock this guess set, as *Denial errors
	// (joined when both), or nil.
	Set error
	// Uncounted holds the *Denial (ErrFull) of a strike that found no room
	// in the security state, which is full of locks: the code may still be
	// compared, so that a person's right code is never refused for room,
	// but a wrong one is answered with Uncounted, since it was not counted.
	Uncounted error
}

// LockedAccount reports whether g set a lock on the account.
func (g Guess) LockedAccount() bool {
	if g.Set == nil {
		return false
	}
	errs := []error{g.Set}
	if j, ok := g.Set.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if errors.Is(e, ErrLocked) {
			return true
		}
	}
	return false
}

// Event is a security event, for logs, metrics and alerts. It never holds a
// code, a token or a full phone number.
type Event struct {
	Name     string // see the Event* constants
	Account  string
	ClientIP string
	FlowRef  string // a short, non-secret reference to the flow
	Phone    string // masked
	Reason   string
	Scope    string
}

// Event names.
const (
	EventFlowStarted    = "flow_started"
	EventCodeResent     = "code_resent"
	EventSMSRefused     = "sms_refused"
	EventSMSFailed      = "sms_failed"
	EventWrongCode      = "wrong_code"
	EventFlowExhausted  = "flow_exhausted"
	EventCodeVerified   = "code_verified"
	EventRateLimited    = "rate_limited"    // over a limit; Scope names it
	EventAccountLocked  = "account_locked"  // wrong codes have just locked an account
	EventIPBlocked      = "ip_blocked"      // wrong codes have just blocked a client
	EventRefused        = "request_refused" // refused while a lock (Scope lockout) or block (ip_block) is in force
	EventResetForwarded = "reset_forwarded"
	EventResetFailed    = "reset_failed"
	EventStateFull      = "state_full"  // refused: no room to record security state
	EventLockNotice     = "lock_notice" // the owner of a newly locked account is told
)

// Observer receives security events. It must not block.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}
