package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Config is the policy of a flow. Zero values are not defaults: the caller
// fills every field (the Caddy module does so in Provision).
type Config struct {
	CodeLength     int           // digits in a code, 6..10
	CodeTTL        time.Duration // how long a code is valid
	MaxAttempts    int           // codes tried per flow before it dies
	ResendInterval time.Duration // least time between two codes of one flow
	TokenTTL       time.Duration // how long a reset token is valid
	TokenLease     time.Duration // how long one reset attempt may hold a token
	SiteName       string
	Support        string
	PathPrefix     string // the path of the recovery routes, for the SMS link
	NotifyOnReset  bool   // send the phone a notice after a successful reset
	NotifyOnLock   bool   // send the phone a notice when wrong codes lock its account
	DefaultLang    string // language of messages when the directory gives none
	PrefixDigits   int    // national digits of a destination prefix (DestinationPrefix)
	// PublicURL is the base of the links in e-mail notices, which no
	// request gives.
	PublicURL string
	// NotMeTTL is how long the "this wasn't me" link of a reset notice
	// works; 0 for notices without one.
	NotMeTTL time.Duration
	// MailMailbox sends a reset notice into the account's own mailbox,
	// when the account is an e-mail address; MailAlternate to the
	// directory's alternate address of it. Both need Deps.Mailer.
	MailMailbox, MailAlternate bool
}

// Deps are the collaborators of a Service. Observer may be nil.
type Deps struct {
	Store     Store
	Directory Directory
	Phones    PhonePolicy
	Sender    Sender
	Guard     Guard
	Observer  Observer
	Messages  *Messages
	Keys      *Keyring
	Clock     Clock
	Rand      io.Reader
	// Mailer, when set, takes the e-mail notices of a reset.
	Mailer Mailer
	// Locker, when set, locks the recovery of an account whose owner used
	// the not-me link of a notice (Dispute).
	Locker Locker
}

// Service runs recovery flows.
type Service struct {
	cfg Config
	Deps
	// standInSet draws unknown accounts' stand-ins from the checked set
	// (see PhonesChecked).
	standInSet bool
	// links remembers the last public URL link parsed, with what it gave:
	// a gateway has one, and every code message links to it.
	links atomic.Pointer[parsedLink]
}

// parsedLink is what link made of one public URL.
type parsedLink struct {
	publicURL, link, host string
}

// PhonesChecked is a Directory whose every number the phone policy checked
// ahead, when it loaded (a file). An unknown account then takes its
// stand-in number from the keyring's set, which the policy checked ahead as
// well (Keyring.StandInFromSet): both kinds find their answer ready. Any
// other directory's numbers are checked at the request that finds them, and
// an unknown account's stand-in, its own number, is checked there too.
type PhonesChecked interface {
	PhonesChecked() bool
}

func phonesChecked(v any) bool {
	c, ok := v.(PhonesChecked)
	return ok && c.PhonesChecked()
}

// New returns a Service. It checks that every collaborator is there.
func New(cfg Config, d Deps) (*Service, error) {
	switch {
	case d.Store == nil, d.Directory == nil, d.Phones == nil, d.Sender == nil,
		d.Guard == nil, d.Messages == nil, d.Keys == nil, d.Clock == nil, d.Rand == nil:
		return nil, errors.New("recovery: missing collaborator")
	case cfg.CodeLength < 6 || cfg.CodeLength > 10:
		return nil, fmt.Errorf("code length %d out of range 6..10", cfg.CodeLength)
	case cfg.CodeTTL <= 0 || cfg.TokenTTL <= 0 || cfg.TokenLease <= 0 || cfg.MaxAttempts < 1 || cfg.ResendInterval < 0:
		return nil, errors.New("recovery: lifetimes and attempts must be positive")
	}
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	return &Service{cfg: cfg, Deps: d, standInSet: phonesChecked(d.Directory)}, nil
}

// Started is the answer to Start and Resend.
type Started struct {
	FlowID    string
	ExpiresIn time.Duration
}

// event returns the start of every event of the flow with that ID.
func (s *Service) event(flowID, account, clientIP string) Event {
	return Event{Account: account, ClientIP: clientIP, FlowRef: FlowRef(flowID), Trace: s.Keys.TraceRef(flowID)}
}

// StartRequest asks for a code for an account.
type StartRequest struct {
	Account   string // as typed
	ClientIP  string
	PublicURL string // scheme://host[:port] the SMS links to
}

// Start begins a flow. It answers the same for an account that exists, one
// that does not and one without a usable phone: the latter two get a decoy
// flow that no code verifies. The SMS is queued, never awaited.
func (s *Service) Start(ctx context.Context, req StartRequest) (Started, error) {
	account, err := NormalizeAccount(req.Account)
	if err != nil {
		return Started{}, err
	}
	link, host, err := s.link(req.PublicURL)
	if err != nil {
		return Started{}, err
	}
	id, err := randomID(s.Rand, flowIDBytes)
	if err != nil {
		return Started{}, err
	}
	code, err := randomCode(s.Rand, s.cfg.CodeLength)
	if err != nil {
		return Started{}, err
	}
	now := s.Clock.Now()
	f := Flow{
		ID:        id,
		Account:   account,
		CodeHash:  s.Keys.HashCode(id, code),
		Sends:     1,
		SentAt:    now,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.CodeTTL),
		ClientIP:  req.ClientIP,
		PublicURL: req.PublicURL,
	}
	ev := s.event(id, account, req.ClientIP)
	to, err := s.resolve(ctx, &f)
	if err != nil {
		return Started{}, traced(ev.Trace, err)
	}
	msg, err := s.compose(&f, to, code, link+id, host, ev)
	if err != nil {
		return Started{}, traced(ev.Trace, err)
	}
	// The lookup first, so that the checks and the new flow are one step.
	sms, err := s.Guard.StartFlow(ctx, req.ClientIP, f, s.Keys.PhoneKey(to.phone))
	if err != nil {
		// A refused start has no flow, but its events are filed under the
		// reference its flow would have had, which the answer shows.
		refused := ev
		refused.FlowRef = ""
		return Started{}, traced(ev.Trace, s.changeFailed(ctx, err, refused, "starting flow"))
	}
	msg.Admit = s.admitCode(to, sms, ev)
	ev.Name, ev.Phone = EventFlowStarted, f.PhoneMasked
	s.Observer.Observe(ctx, ev)
	s.send(ctx, msg, ev)
	return Started{FlowID: id, ExpiresIn: s.cfg.CodeTTL}, nil
}

// standIn is the number that stands in for an account without one.
func (s *Service) standIn(account string) string {
	if s.standInSet {
		return s.Keys.StandInFromSet(account)
	}
	return s.Keys.StandInPhone(account)
}

// recipient is the number a message goes to, as resolve found it.
type recipient struct {
	phone   string
	prefix  string // its destination prefix
	unknown bool   // the account has no phone: phone is a stand-in
	refused error  // why phone must not be texted, or nil
}

// resolve looks the account up and checks its number, filling the flow's
// language, masked phone and decoy flag. Every kind of account, known with a
// mobile, known with a number that must not be texted, and unknown (given a
// stand-in number), does the same work in the same order: lookup, phone
// check, and then (compose) render and a message to queue. What is delivered
// is decided later, in the background: the queue drops an unknown account's
// decoy unseen, and a refused number is reported when its turn comes
// (Message.Admit). The per-phone and global SMS limits are checked there
// too, after the answer has gone out, so that their cost tells nothing
// either.
func (s *Service) resolve(ctx context.Context, f *Flow) (recipient, error) {
	entry, err := s.Directory.Lookup(ctx, f.Account)
	if err != nil && !errors.Is(err, ErrUnknownAccount) {
		return recipient{}, unavailable("looking up account", err)
	}
	unknown := err != nil
	if unknown {
		entry.Phone = s.standIn(f.Account)
	}
	f.Lang = s.lang(entry)
	phone, perr := s.Phones.Check(entry.Phone)
	if perr != nil {
		phone = entry.Phone
	}
	f.PhoneMasked = MaskPhone(phone)
	f.Prefix = DestinationPrefix(phone, s.cfg.PrefixDigits)
	// Whether the account exists is decided last, and only by flags the
	// queue reads later: the branches cost the same.
	f.Decoy = unknown || perr != nil
	return recipient{phone: phone, prefix: f.Prefix, unknown: unknown, refused: perr}, nil
}

// compose renders the code message of f to to.
func (s *Service) compose(f *Flow, to recipient, code, link, host string, ev Event) (Message, error) {
	body, err := s.Messages.Code(f.Lang, MessageData{
		SiteName: s.cfg.SiteName,
		Code:     code,
		Minutes:  minutes(f.ExpiresAt.Sub(f.SentAt)),
		Link:     link,
		Host:     host,
		Support:  s.cfg.Support,
	})
	if err != nil {
		return Message{}, err
	}
	ev.Phone = f.PhoneMasked
	m := Message{
		Kind:      "code",
		To:        to.phone,
		Masked:    f.PhoneMasked,
		Body:      body,
		Reference: ev.FlowRef,
		Trace:     ev.Trace,
		Validity:  f.ExpiresAt.Sub(f.SentAt),
		ExpiresAt: f.ExpiresAt,
		Decoy:     to.unknown,
	}
	return m, nil
}

// admitCode returns the check of a code message to to, whose SMS limits
// the flow's step counted already (sms is their refusal, or nil): a number
// that must not be texted, or a refused code, is reported when the queue
// comes to the message, which is then dropped. Reporting it in the request
// would make the answer tell.
func (s *Service) admitCode(to recipient, sms error, ev Event) func(context.Context) error {
	why := to.refused
	if why == nil {
		why = sms
	}
	if why == nil || to.unknown {
		return nil
	}
	// The closure changes a copy of ev, so that it holds ev by value: one
	// allocation, not two.
	ev.Prefix = to.prefix
	return func(ctx context.Context) error {
		s.smsRefused(ctx, why, ev)
		return why
	}
}

// admitSMS returns the check a notice must pass just before it is
// delivered: the block of its destination prefix, the per-phone limit and
// the global SMS budget.
func (s *Service) admitSMS(phone string, ev Event) func(context.Context) error {
	return func(ctx context.Context) error {
		ev.Prefix = DestinationPrefix(phone, s.cfg.PrefixDigits)
		err := s.Guard.SMS(ctx, s.Keys.PhoneKey(phone), ev.Prefix)
		if err != nil {
			s.smsRefused(ctx, err, ev)
		}
		return err
	}
}

// smsRefused reports a message dropped: for its number, or by the SMS
// limits or the block of its prefix (a *Denial), or because they could not
// be checked. A block the message set is reported first, on its own: it
// names the prefix, not the account.
func (s *Service) smsRefused(ctx context.Context, why error, ev Event) {
	ev.Name, ev.Reason, ev.Cause = EventSMSRefused, why.Error(), why
	var d *Denial
	switch {
	case errors.As(why, &d) && errors.Is(d, ErrPrefixBlocked):
		if d.Set {
			s.Observer.Observe(ctx, Event{Name: EventPrefixBlocked, Scope: d.Scope, Prefix: ev.Prefix, Reason: blockReason(d)})
		}
		ev.Reason, ev.Scope = "prefix blocked", d.Scope
	case errors.As(why, &d):
		ev.Reason, ev.Scope, ev.Prefix = "rate limited", d.Scope, ""
	case errors.Is(why, ErrUnavailable):
		ev.Reason, ev.Prefix = "sms limits unavailable", ""
	default:
		ev.Prefix = ""
	}
	s.Observer.Observe(ctx, ev)
}

// blockReason says how long a prefix's new block d holds.
func blockReason(d *Denial) string {
	if d.Permanent {
		return "too few of its codes were entered: blocked until support lifts it"
	}
	return "too few of its codes were entered: blocked for " + d.RetryAfter.String()
}

// changeFailed answers a change to a flow that the guard refused (a store
// with no room left since Start looked) or could not make.
func (s *Service) changeFailed(ctx context.Context, err error, base Event, what string) error {
	var d *Denial
	if errors.As(err, &d) {
		return s.denied(ctx, err, base)
	}
	return unavailable(what, err)
}

// send queues a message, decoys too. What becomes of a queued message is
// reported by the sender, in the background: reporting it here would make a
// real account's answer slower than a decoy's.
func (s *Service) send(ctx context.Context, m Message, ev Event) {
	if err := s.Sender.Send(ctx, m); err != nil && !m.Decoy {
		ev.Name, ev.Reason, ev.Phone = EventSMSFailed, err.Error(), m.Masked
		if ev.Phone == "" {
			ev.Phone = MaskPhone(m.To)
		}
		s.Observer.Observe(ctx, ev)
	}
}

// Resend sends a new code for a flow, replacing the old one, once the resend
// interval has passed. The attempts already made still count.
func (s *Service) Resend(ctx context.Context, flowID, clientIP string) (Started, error) {
	if !validID(flowID, flowIDLen) {
		return Started{}, ErrInvalidRequest
	}
	started, err := s.resend(ctx, flowID, clientIP)
	return started, traced(s.Keys.TraceRef(flowID), err)
}

func (s *Service) resend(ctx context.Context, flowID, clientIP string) (Started, error) {
	f, err := s.Store.Flow(ctx, flowID)
	if err != nil {
		return Started{}, notFound(err, ErrExpired)
	}
	if f.Attempts >= s.cfg.MaxAttempts {
		// Its attempts are spent: a new code could only ever be refused.
		// (The plan checks again, in its one step with the resend.)
		return Started{}, ErrExpired
	}
	now := s.Clock.Now()
	if wait := f.SentAt.Add(s.cfg.ResendInterval).Sub(now); wait > 0 {
		return Started{}, tooEarly(wait, f.SentAt.Add(s.cfg.ResendInterval))
	}
	link, host, err := s.link(f.PublicURL)
	if err != nil {
		return Started{}, err
	}
	code, err := randomCode(s.Rand, s.cfg.CodeLength)
	if err != nil {
		return Started{}, err
	}
	next := f
	next.SentAt, next.ExpiresAt = now, now.Add(s.cfg.CodeTTL)
	ev := s.event(flowID, f.Account, clientIP)
	to, err := s.resolve(ctx, &next)
	if err != nil {
		return Started{}, err
	}
	if f.Decoy { // once a decoy, always a decoy: no code of it ever verifies
		next.Decoy, to.unknown = true, true
	}
	msg, err := s.compose(&next, to, code, link+flowID, host, ev)
	if err != nil {
		return Started{}, err
	}
	op := ResendOp{ID: flowID, CodeHash: s.Keys.HashCode(flowID, code), Now: now, Interval: s.cfg.ResendInterval,
		ExpiresAt: next.ExpiresAt, MaxAttempts: s.cfg.MaxAttempts, Prefix: next.Prefix}
	f, sms, err := s.Guard.ResendFlow(ctx, clientIP, op, s.Keys.PhoneKey(to.phone), next.Decoy)
	switch {
	case errors.Is(err, ErrTooEarly):
		return Started{}, tooEarly(f.SentAt.Add(s.cfg.ResendInterval).Sub(now), f.SentAt.Add(s.cfg.ResendInterval))
	case errors.Is(err, ErrNotFound):
		return Started{}, ErrExpired
	case err != nil:
		ev.Account = f.Account
		return Started{}, s.changeFailed(ctx, err, ev, "resending code")
	}
	msg.Admit = s.admitCode(to, sms, ev)
	ev.Name, ev.Phone = EventCodeResent, next.PhoneMasked
	s.Observer.Observe(ctx, ev)
	s.send(ctx, msg, ev)
	return Started{FlowID: flowID, ExpiresIn: s.cfg.CodeTTL}, nil
}

// Verified is the answer to a correct code.
type Verified struct {
	Token     string
	ExpiresIn time.Duration
}

// Verify checks a code. The attempt is counted before the code is compared,
// so that concurrent guesses cannot exceed MaxAttempts; a correct code ends
// the flow and yields a reset token, once.
func (s *Service) Verify(ctx context.Context, flowID, code, clientIP string) (Verified, error) {
	if !validID(flowID, flowIDLen) {
		return Verified{}, ErrInvalidRequest
	}
	v, err := s.verify(ctx, flowID, code, clientIP)
	return v, traced(s.Keys.TraceRef(flowID), err)
}

func (s *Service) verify(ctx context.Context, flowID, code, clientIP string) (Verified, error) {
	if !s.validCode(code) {
		return Verified{}, ErrInvalidRequest
	}
	ev := s.event(flowID, "", clientIP)
	f, guess, err := s.Guard.Verify(ctx, clientIP, flowID, s.cfg.MaxAttempts)
	ev.Account, ev.Phone = f.Account, f.PhoneMasked
	var d *Denial
	switch {
	case errors.As(err, &d):
		return Verified{}, s.denied(ctx, err, ev)
	case errors.Is(err, ErrExhausted):
		ev.Name = EventFlowExhausted
		s.Observer.Observe(ctx, ev)
		return Verified{}, ErrExpired
	case err != nil:
		return Verified{}, notFound(err, ErrExpired)
	}
	if !s.Keys.MatchCode(flowID, code, f.CodeHash) || f.Decoy {
		return Verified{}, s.wrongCode(ctx, f, guess, ev)
	}
	token, t, err := s.newToken(f)
	if err != nil {
		return Verified{}, err
	}
	won, err := s.Guard.Right(ctx, clientIP, f, t)
	if err != nil {
		return Verified{}, unavailable("ending flow", err)
	}
	if !won {
		return Verified{}, ErrExpired
	}
	ev.Name = EventCodeVerified
	s.Observer.Observe(ctx, ev)
	return Verified{Token: token, ExpiresIn: s.cfg.TokenTTL}, nil
}

// wrongCode reports a wrong code and answers it: with the lock or block the
// guess set, or with the attempts left.
func (s *Service) wrongCode(ctx context.Context, f Flow, guess Guess, ev Event) error {
	ev.Name = EventWrongCode
	s.Observer.Observe(ctx, ev)
	if guess.Uncounted != nil {
		return s.denied(ctx, guess.Uncounted, ev)
	}
	if guess.Set != nil {
		if guess.LockedAccount() && s.cfg.NotifyOnLock {
			s.notifyLock(ctx, f.Account, ev, s.Messages.LockNotice)
		}
		return s.locked(ctx, guess.Set, ev)
	}
	return &CodeError{AttemptsLeft: max(0, s.cfg.MaxAttempts-f.Attempts)}
}

// newToken returns a new reset token for the account of f, and its record.
func (s *Service) newToken(f Flow) (string, Token, error) {
	token, err := randomID(s.Rand, tokenBytes)
	if err != nil {
		return "", Token{}, err
	}
	return token, Token{
		Hash:      s.Keys.HashToken(token),
		Account:   f.Account,
		FlowID:    f.ID,
		ExpiresAt: s.Clock.Now().Add(s.cfg.TokenTTL),
	}, nil
}

func (s *Service) validCode(code string) bool {
	if len(code) != s.cfg.CodeLength {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// Reset is one attempt to spend a reset token: it holds the token until
// Finish, so that no concurrent attempt can use it.
type Reset struct {
	Account  string
	ClientIP string
	FlowID   string
	Trace    string // the support reference of the flow
	hash     []byte
	s        *Service
}

// BeginReset takes a reset token for one attempt. An unknown, expired, spent
// or busy token is ErrInvalidToken.
func (s *Service) BeginReset(ctx context.Context, token, clientIP string) (*Reset, error) {
	if !validID(token, tokenLen) {
		return nil, ErrInvalidToken
	}
	for _, h := range s.Keys.TokenHashes(token) {
		t, err := s.Store.BeginSpend(ctx, h, s.cfg.TokenLease)
		switch {
		case err == nil:
			return &Reset{Account: t.Account, ClientIP: clientIP, FlowID: t.FlowID, Trace: s.Keys.TraceRef(t.FlowID), hash: h, s: s}, nil
		case errors.Is(err, ErrNotFound):
			continue
		case errors.Is(err, ErrBusy):
			return nil, ErrInvalidToken
		default:
			return nil, unavailable("taking token", err)
		}
	}
	return nil, ErrInvalidToken
}

// Finish ends the attempt: when the upstream accepted the reset, the token is
// spent and the phone notified; otherwise the token can be used again.
func (r *Reset) Finish(ctx context.Context, accepted bool) error {
	s := r.s
	ev := s.event(r.FlowID, r.Account, r.ClientIP)
	if err := s.Store.EndSpend(ctx, r.hash, accepted); err != nil {
		return traced(r.Trace, unavailable("ending token use", err))
	}
	if !accepted {
		ev.Name = EventResetFailed
		s.Observer.Observe(ctx, ev)
		return nil
	}
	ev.Name = EventResetForwarded
	s.Observer.Observe(ctx, ev)
	if !s.cfg.NotifyOnReset && s.Mailer == nil {
		return nil
	}
	entry, err := s.Directory.Lookup(ctx, r.Account)
	if err != nil {
		return nil
	}
	if s.cfg.NotifyOnReset {
		s.notify(ctx, entry, ev)
	}
	s.mailNotices(ctx, r.Account, entry, ev)
	return nil
}

// notify tells the account's phone that its password changed.
func (s *Service) notify(ctx context.Context, entry Entry, ev Event) {
	phone, err := s.Phones.Check(entry.Phone)
	if err != nil {
		return
	}
	body, err := s.Messages.Notice(s.lang(entry), MessageData{SiteName: s.cfg.SiteName, Support: s.cfg.Support})
	if err != nil {
		return
	}
	s.send(ctx, Message{Kind: "notice", To: phone, Body: body, Reference: ev.FlowRef, Trace: ev.Trace,
		ExpiresAt: s.Clock.Now().Add(24 * time.Hour)}, ev)
}

// NotifyImposedLock tells the phone of an account whose recovery support
// has just locked, by the path of a lockout's notice: one short notice,
// saying that support locked it, with the support text, within the SMS limits, and nothing for an account the
// directory does not know or whose number must not be texted. The caller
// calls it once per new lock. It reports whether a notice was queued for
// a real phone, so that a lock imposed on several stores at once texts the
// phone once. Nothing is sent when the operator turned lock notices off.
func (s *Service) NotifyImposedLock(ctx context.Context, account string, ev Event) bool {
	if !s.cfg.NotifyOnLock {
		return false
	}
	return s.notifyLock(ctx, account, ev, s.Messages.ImposedNotice)
}

// notifyLock tells the phone of an account whose recovery a wrong code has
// just locked, so that its owner learns someone is trying. The guard sets
// a lock once, so this runs once per lock. The notice goes through the same
// SMS limits as a code: a flood of locks cannot spend more than the budget.
// An account without a usable phone is looked up and rendered for all the
// same, so that locking it costs no less. render is the text: why the
// recovery is locked. It reports whether the notice is for a real phone
// (not a decoy).
func (s *Service) notifyLock(ctx context.Context, account string, ev Event, render func(string, MessageData) (string, error)) bool {
	entry, err := s.Directory.Lookup(ctx, account)
	unknown := err != nil
	if unknown {
		entry.Phone = s.standIn(account)
	}
	lang := s.lang(entry)
	body, err := render(lang, MessageData{SiteName: s.cfg.SiteName, Support: s.cfg.Support})
	if err != nil {
		return false
	}
	body = s.Messages.WithReference(lang, body, ev.Trace)
	phone, perr := s.Phones.Check(entry.Phone)
	if perr != nil {
		phone = entry.Phone
	}
	m := Message{Kind: "lock_notice", To: phone, Body: body, Reference: ev.FlowRef, Trace: ev.Trace,
		ExpiresAt: s.Clock.Now().Add(time.Hour), Admit: s.admitSMS(phone, ev)}
	// As for a code: a decoy is queued all the same, and dropped unseen.
	if m.Decoy = unknown || perr != nil; !m.Decoy {
		ev.Name, ev.Phone = EventLockNotice, MaskPhone(phone)
		s.Observer.Observe(ctx, ev)
	}
	s.send(ctx, m, ev)
	return !m.Decoy
}

// lang is the language of messages to an entry.
func (s *Service) lang(e Entry) string {
	if e.Lang != "" {
		return e.Lang
	}
	return s.cfg.DefaultLang
}

// link returns the start of the SMS link (up to "?flow=") and the host for
// the origin-bound line.
func (s *Service) link(publicURL string) (string, string, error) {
	if l := s.links.Load(); l != nil && l.publicURL == publicURL {
		return l.link, l.host, nil
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", fmt.Errorf("%w: bad public URL", ErrInvalidRequest)
	}
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+strings.TrimSuffix(u.Path, "/"), "/")
	l := &parsedLink{publicURL: publicURL, link: base + strings.TrimSuffix(s.cfg.PathPrefix, "/") + "/?flow=", host: u.Hostname()}
	s.links.Store(l)
	return l.link, l.host, nil
}

// denied reports a request the guard refused and passes the refusal on;
// other guard errors mean it could not decide, and the request fails closed.
func (s *Service) denied(ctx context.Context, err error, base Event) error {
	return s.report(ctx, err, base, false)
}

// locked reports the locks and blocks a wrong code has just set.
func (s *Service) locked(ctx context.Context, err error, base Event) error {
	return s.report(ctx, err, base, true)
}

// report emits one event per refusal in err (a wrong code can lock the
// account and block the IP at once) and returns the first refusal. A lock
// or block is reported as set only when it was set now; a request refused
// while one is in force is EventRefused, so that alerts can count new locks.
// base holds the account, client, flow and support reference of each event.
func (s *Service) report(ctx context.Context, err error, base Event, set bool) error {
	var first *Denial
	if !errors.As(err, &first) {
		// The guard's error says what it was doing.
		if errors.Is(err, ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	denials := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		denials = j.Unwrap()
	}
	for _, e := range denials {
		var d *Denial
		if !errors.As(e, &d) {
			continue
		}
		ev := Event{Account: base.Account, ClientIP: base.ClientIP, FlowRef: base.FlowRef, Trace: base.Trace, Scope: d.Scope}
		switch {
		case errors.Is(d, ErrRateLimited):
			ev.Name = EventRateLimited
		case errors.Is(d, ErrFull):
			ev.Name = EventStateFull
		case !set:
			ev.Name = EventRefused
		case errors.Is(d, ErrLocked):
			ev.Name = EventAccountLocked
		default:
			ev.Name = EventIPBlocked
		}
		s.Observer.Observe(ctx, ev)
	}
	return first
}

func tooEarly(wait time.Duration, at time.Time) error {
	return &Denial{Reason: ErrRateLimited, Scope: "resend_interval", RetryAfter: max(wait, time.Second), Reset: at}
}

func notFound(err, as error) error {
	if errors.Is(err, ErrNotFound) {
		return as
	}
	return unavailable("reading storage", err)
}

func unavailable(what string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

func minutes(d time.Duration) int {
	return int((d + time.Minute - 1) / time.Minute)
}

type nopObserver struct{}

func (nopObserver) Observe(context.Context, Event) {}
