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
	// ErrPrefixBlocked is a code that is not sent: its destination prefix
	// is blocked, since too few of the codes sent to it were entered.
	ErrPrefixBlocked = errors.New("destination prefix blocked")
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
	// ErrTooEarly is returned by Guard.ResendFlow inside the resend interval.
	ErrTooEarly = errors.New("too early")
	// ErrExhausted is returned by a Guard for a flow whose attempts ran
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
// ErrLocked, ErrBlocked, ErrPrefixBlocked or ErrFull.
type Denial struct {
	Reason     error         // ErrRateLimited, ErrLocked, ErrBlocked, ErrPrefixBlocked or ErrFull
	Scope      string        // the limit that was hit, e.g. "start_ip", "lockout", "ip_block"
	RetryAfter time.Duration // how long until the request may succeed
	Limit      int64         // the limit's size, for RateLimit-* headers (0 if none)
	Remaining  int64         // what is left of the limit
	Reset      time.Time     // when the limit's window ends
	Permanent  bool          // a lock that only support can lift
	Set        bool          // the request refused set the lock or block
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
	// Prefix is the destination prefix of the flow's codes
	// (DestinationPrefix), under which the conversion breaker counts them.
	Prefix string `json:"prefix,omitempty"`
}

// Token is a reset token, as stored: only its keyed hash is kept.
type Token struct {
	Hash      []byte    `json:"hash"`
	Account   string    `json:"account"`
	FlowID    string    `json:"flow_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Entry is what a Directory knows of an account.
type Entry struct {
	Phone string // as the directory has it; checked by a PhonePolicy before use
	Lang  string // preferred language (BCP 47 primary tag), optional
	// Email is an alternate e-mail address of the account's owner, outside
	// the mailbox, where a reset notice also goes; optional.
	Email string
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
	Trace     string // the support reference of its flow, for its outcome
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

// Guard is the abuse layer: rate limits, account locks and IP blocks, and
// the changes to flows, each made in one atomic step with the checks of its
// request, so that every invariant holds under any concurrency: attempts
// counted before comparison, a flow consumed once, no guess past a
// threshold. Refusals are *Denial errors; other errors mean the guard
// cannot decide and the request fails closed.
//
// Every request takes its steps in the same order: the account is looked
// up first, and then its checks and its change are one step.
type Guard interface {
	// StartFlow checks and counts a start for f's account from ip, stores
	// f and counts its code against the phone behind phoneKey
	// (Keyring.PhoneKey) and the global SMS budget, in one step. A refused
	// code does not refuse the flow: the refusal is returned as sms, and
	// the code message is dropped. A decoy spends no SMS budget.
	StartFlow(ctx context.Context, ip string, f Flow, phoneKey string) (sms, err error)
	// ResendFlow checks and counts a resend from ip as a start for the
	// flow's account, replaces its code and counts the new code as
	// StartFlow does: ErrNotFound for a missing or expired flow or one with
	// its attempts spent, ErrTooEarly with the flow inside the interval
	// (neither counted), a *Denial, or the flow with its new code.
	ResendFlow(ctx context.Context, ip string, r ResendOp, phoneKey string, decoy bool) (f Flow, sms, err error)
	// SMS is asked just before a notice goes to a phone, identified by a
	// keyed hash (Keyring.PhoneKey), under the destination prefix prefix.
	// A refusal drops the message silently.
	SMS(ctx context.Context, phoneKey, prefix string) error
	// Verify refuses a blocked client or a locked account, counts the
	// request against the client, counts one attempt on the flow and the
	// code about to be compared against the client and the account:
	// ErrNotFound for a missing or expired flow, ErrExhausted (with the
	// flow as it was) when this attempt was one too many, a *Denial (with
	// the flow, if it was found), or the flow with the attempt counted and
	// the Guess. What the guess set stands if the code is wrong.
	Verify(ctx context.Context, ip, id string, maxAttempts int) (Flow, Guess, error)
	// Right follows a Verify whose code was right, for the flow f it
	// returned: it consumes the flow and, only if this call did, ends the
	// account's run of wrong codes, takes the client's strike back, counts
	// a code entered for the flow's prefix and stores t. It reports whether
	// this call consumed the flow.
	Right(ctx context.Context, ip string, f Flow, t Token) (bool, error)
}

// ResendOp is the change ResendFlow makes: when at least Interval has
// passed since the flow's last code (read at Now), its code becomes
// CodeHash, SentAt Now and ExpiresAt ExpiresAt, and Sends grows by one. A
// flow with MaxAttempts attempts is spent, and not resent. Prefix is the
// destination prefix of the new code.
type ResendOp struct {
	ID          string
	CodeHash    []byte
	Now         time.Time
	Interval    time.Duration
	ExpiresAt   time.Time
	MaxAttempts int
	Prefix      string
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
	// Trace is the support reference the event is filed under: its flow's
	// (Keyring.TraceRef), or a refused start's; empty for events of no
	// flow or request (a prefix blocked, a store's alarm).
	Trace  string
	Phone  string // masked
	Reason string
	Scope  string
	// Cause is the error Reason tells of, when there is one: the phone
	// policy's refusal of a number, say, which an observer may count by
	// kind. Like Reason, it never holds a phone number.
	Cause  error
	Prefix string // a destination prefix, for the conversion breaker's events
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
	// EventPrefixBlocked: too few of the codes sent to a destination
	// prefix were entered, and its codes are blocked (Event.Prefix).
	EventPrefixBlocked = "prefix_blocked"
)

// Observer receives security events. It must not block.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}
