package limiter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	ulimiter "github.com/ulule/limiter/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Scopes name the limits in Denial.Scope, in configuration errors and in the
// counter keys, so that no two scopes ever share a counter.
const (
	ScopeStartIP      = "start_ip"
	ScopeStartAccount = "start_account"
	ScopeStartPhone   = "start_phone"
	ScopeVerifyIP     = "verify_ip"
	ScopeSMSGlobal    = "sms_global"
	ScopeLockout      = "lockout"
	ScopeIPBlock      = "ip_block"
	// ScopeFlows names a refusal for want of room in a store's tables: of
	// flows, or of counters that are never dropped.
	ScopeFlows = recovery.ScopeRoom
)

// Rate allows Events events in each fixed Window.
type Rate struct {
	Events int64
	Window time.Duration
}

// Threshold locks or blocks for Duration once Failures wrong codes fall in
// one fixed Window.
type Threshold struct {
	Failures int64
	Window   time.Duration
	Duration time.Duration
}

// Defaults of the run of wrong codes an account may make.
const (
	// DefaultMaxLockDuration caps the doubling of locks in a row.
	DefaultMaxLockDuration = 24 * time.Hour
	// DefaultPermanentAfter is how many wrong codes in a row lock an
	// account's recovery until support lifts it: NIST SP 800-63B §5.2.2
	// allows no more than 100 consecutive failed attempts.
	DefaultPermanentAfter = 100
)

// Config holds the limits of a Guard. Every field must be set; start from
// DefaultConfig.
type Config struct {
	// StartIP limits flows started or resent per client. Default: 10 per hour.
	StartIP Rate
	// StartAccount limits flows started or resent per account, whoever asks.
	// Default: 3 per hour.
	StartAccount Rate
	// StartPhone limits codes sent to one phone number. Default: 3 per hour.
	StartPhone Rate
	// VerifyIP limits codes checked per client. Default: 50 per hour.
	VerifyIP Rate
	// SMSGlobal is the budget of codes sent across all accounts, which caps
	// what a flood can cost. Default: 1000 per hour.
	SMSGlobal Rate
	// Lockout locks an account's recovery after wrong codes; the mailbox
	// itself is never locked. Default: 5 failures in 1h lock it for 30m.
	// Each further lock before a correct code lasts twice as long as the
	// one before, up to MaxLockDuration.
	Lockout Threshold
	// MaxLockDuration caps the length of an account's locks in a row.
	// Default: 24h (or Lockout.Duration, if longer).
	MaxLockDuration time.Duration
	// PermanentAfter is how many wrong codes in a row, however slowly
	// made, lock an account's recovery until support lifts the lock.
	// Only a correct code or a lift ends the run. Default: 100.
	PermanentAfter int64
	// IPBlock blocks a client after wrong codes for any accounts. Default: 20
	// failures in 1h block it for 1h.
	IPBlock Threshold
	// Breaker blocks the codes to a destination prefix whose codes are
	// sent but not entered. Default: DefaultBreaker.
	Breaker Breaker
	// Shares divide SMSGlobal among client networks and destination
	// countries. Default: DefaultNetworkShare percent per network, the
	// countries undivided.
	Shares Shares
	// Spend prices codes and caps their cost per day and month. Default:
	// none.
	Spend Spend
}

// DefaultConfig returns the limits of SPEC §3, which apply when the
// operator writes none.
func DefaultConfig() Config {
	return Config{
		StartIP:      Rate{Events: 10, Window: time.Hour},
		StartAccount: Rate{Events: 3, Window: time.Hour},
		StartPhone:   Rate{Events: 3, Window: time.Hour},
		VerifyIP:     Rate{Events: 50, Window: time.Hour},
		SMSGlobal:    Rate{Events: 1000, Window: time.Hour},
		Lockout:      Threshold{Failures: 5, Window: time.Hour, Duration: 30 * time.Minute},
		IPBlock:      Threshold{Failures: 20, Window: time.Hour, Duration: time.Hour},

		MaxLockDuration: DefaultMaxLockDuration,
		PermanentAfter:  DefaultPermanentAfter,
		Breaker:         DefaultBreaker(),
		Shares:          Shares{Network: DefaultNetworkShare},
	}
}

// Validate reports every limit that cannot work, naming its scope.
func (c Config) Validate() error {
	var errs []error
	for _, r := range []struct {
		scope string
		rate  Rate
	}{
		{ScopeStartIP, c.StartIP},
		{ScopeStartAccount, c.StartAccount},
		{ScopeStartPhone, c.StartPhone},
		{ScopeVerifyIP, c.VerifyIP},
		{ScopeSMSGlobal, c.SMSGlobal},
	} {
		if r.rate.Events < 1 {
			errs = append(errs, fmt.Errorf("%s: events must be at least 1, got %d", r.scope, r.rate.Events))
		}
		if r.rate.Window <= 0 {
			errs = append(errs, fmt.Errorf("%s: window must be positive, got %s", r.scope, r.rate.Window))
		}
	}
	for _, t := range []struct {
		scope string
		th    Threshold
	}{
		{ScopeLockout, c.Lockout},
		{ScopeIPBlock, c.IPBlock},
	} {
		if t.th.Failures < 1 {
			errs = append(errs, fmt.Errorf("%s: failures must be at least 1, got %d", t.scope, t.th.Failures))
		}
		if t.th.Window <= 0 {
			errs = append(errs, fmt.Errorf("%s: window must be positive, got %s", t.scope, t.th.Window))
		}
		if t.th.Duration <= 0 {
			errs = append(errs, fmt.Errorf("%s: duration must be positive, got %s", t.scope, t.th.Duration))
		}
	}
	if c.MaxLockDuration <= 0 {
		errs = append(errs, fmt.Errorf("%s: the longest lock must be positive, got %s", ScopeLockout, c.MaxLockDuration))
	}
	if c.PermanentAfter < 1 {
		errs = append(errs, fmt.Errorf("%s: wrong codes before a lasting lock must be at least 1, got %d", ScopeLockout, c.PermanentAfter))
	}
	errs = append(errs, c.Breaker.Validate())
	errs = append(errs, c.validateBudget())
	return errors.Join(errs...)
}

// Guard is the recovery.Guard of rate limits, account locks and IP blocks.
// It turns each request into one recovery.Plan for its recovery.Store, which runs the
// checks, the counters, the change to a flow and the strikes in one atomic
// step, and turns the recovery.Outcome into the refusal the flow reports.
//
// Clients are keyed by ClientKey; accounts must arrive normalised, as
// recovery.NormalizeAccount leaves them. Nothing a client does, right or
// wrong, resets the counters of anyone else: only a correct code for an
// account, or Lift, ends the account's run of wrong codes.
type Guard struct {
	store recovery.Store
	clock recovery.Clock

	startIP, startAccount, startPhone, verifyIP, smsGlobal limit
	lockout, ipBlock                                       threshold
	breaker                                                breaker
	budget                                                 budget
}

// limit is a Rate as the counter store takes it, under its scope's name.
type limit struct {
	scope string
	rate  ulimiter.Rate
}

// threshold is a lock policy with the kind of lock it sets, the refusal
// it gives and, for Locks, why it sets one.
type threshold struct {
	scope  string
	kind   string
	reason error
	why    string
	policy recovery.Policy
}

// New returns a Guard over store, reading the time from clock.
func New(cfg Config, store recovery.Store, clock recovery.Clock) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("limiter config: %w", err)
	}
	if store == nil || clock == nil {
		return nil, errors.New("limiter: store and clock are required")
	}
	newLimit := func(scope string, r Rate) limit {
		return limit{scope: scope, rate: ulimiter.Rate{Limit: r.Events, Period: r.Window}}
	}
	return &Guard{
		store:        store,
		clock:        clock,
		startIP:      newLimit(ScopeStartIP, cfg.StartIP),
		startAccount: newLimit(ScopeStartAccount, cfg.StartAccount),
		startPhone:   newLimit(ScopeStartPhone, cfg.StartPhone),
		verifyIP:     newLimit(ScopeVerifyIP, cfg.VerifyIP),
		smsGlobal:    newLimit(ScopeSMSGlobal, cfg.SMSGlobal),
		lockout: threshold{scope: ScopeLockout, kind: recovery.KindAccount, reason: recovery.ErrLocked, why: recovery.ReasonWrongCodes, policy: recovery.Policy{
			Threshold:   cfg.Lockout.Failures,
			Window:      cfg.Lockout.Window,
			Duration:    cfg.Lockout.Duration,
			MaxDuration: max(cfg.MaxLockDuration, cfg.Lockout.Duration),
			Run:         true,
			Permanent:   cfg.PermanentAfter,
		}},
		ipBlock: threshold{scope: ScopeIPBlock, kind: recovery.KindIP, reason: recovery.ErrBlocked, why: recovery.ReasonWrongCodes, policy: recovery.Policy{
			Threshold:   cfg.IPBlock.Failures,
			Window:      cfg.IPBlock.Window,
			Duration:    cfg.IPBlock.Duration,
			MaxDuration: cfg.IPBlock.Duration,
		}},
		breaker: newBreaker(cfg.Breaker),
		budget:  newBudget(cfg),
	}, nil
}

// StartFlow refuses a blocked client, a locked account, and any start
// while the global SMS budget is spent; otherwise it counts the start
// against the client and then the account, stores f and counts its code
// against the phone behind phoneKey and then the global SMS budget, all in
// one plan. A start the client's limit refuses does not count against the
// account, so that one client cannot fill the store with account counters;
// a store with no room for f refuses before anything is counted. A refused
// code is not a refused start: f is stored all the same, and the refusal,
// returned as sms, drops the code message only (a refused phone spends no
// global budget), and so does a block of the flow's destination prefix,
// which spends none either; the code is counted for the prefix's breaker.
// A decoy's flow peeks the code's counters and the breaker instead of
// counting them, so that it costs the same and spends nothing.
func (g *Guard) StartFlow(ctx context.Context, ip string, f recovery.Flow, phoneKey string) (sms, err error) {
	p := recovery.Plan{Op: recovery.OpCreate, Flow: f, Counts: g.startCounts(ClientKey(ip), f.Account, phoneKey, f.Prefix, f.Decoy)}
	p.Locks = g.lockChecks(ClientKey(ip), f.Account)
	p.Breaker = g.breaker.step(f.Prefix, sendMode(f.Decoy))
	o, err := g.run(ctx, &p)
	if err != nil {
		return nil, err
	}
	return g.soft(&p, o), nil
}

// ResendFlow is StartFlow for the account of flow id, with the flow's new
// code instead of a new flow, in one plan: recovery.ErrNotFound for a
// missing or expired flow or one with r.MaxAttempts attempts spent,
// recovery.ErrTooEarly with the flow inside the interval (nothing counted
// for either), a *Denial, or the flow with its new code.
func (g *Guard) ResendFlow(ctx context.Context, ip string, r recovery.ResendOp, phoneKey string, decoy bool) (recovery.Flow, error, error) {
	client := ClientKey(ip)
	p := recovery.Plan{Op: recovery.OpResend, FlowID: r.ID, CodeHash: r.CodeHash, Now: r.Now, Interval: r.Interval,
		ExpiresAt: r.ExpiresAt, MaxAttempts: r.MaxAttempts, Locks: g.lockChecks(client, ""),
		Counts: g.startCounts(client, "", phoneKey, r.Prefix, decoy), Breaker: g.breaker.step(r.Prefix, sendMode(decoy))}
	o, err := g.run(ctx, &p)
	switch {
	case err != nil:
		return o.Flow, nil, err
	case o.FlowErr != nil:
		return o.Flow, nil, o.FlowErr
	}
	return o.Flow, g.soft(&p, o), nil
}

// startCounts peek the SMS budget, the client network's share of it and
// the spend ceilings, count the start against the client and the account
// (the flow's, with none given), and then the code to the destination
// prefix softly: against its phone, the shares and ceilings (budget.softs)
// and the SMS budget.
func (g *Guard) startCounts(client, account, phoneKey, prefix string, decoy bool) []recovery.Count {
	a := g.startAccount.count(account, false)
	a.OfFlow = account == ""
	now, network := g.clock.Now(), Network(client)
	return slices.Concat(
		[]recovery.Count{g.smsGlobal.count("", true)},
		g.budget.peeks(network, now),
		[]recovery.Count{g.startIP.count(client, false), a, g.startPhone.soft(phoneKey, decoy)},
		g.budget.softs(network, recovery.PrefixCountry(prefix), decoy, now),
		[]recovery.Count{g.smsGlobal.soft("", decoy)},
	)
}

// soft is the refusal of the plan's code in o: the block of its prefix, or
// the first soft counter that refused; or nil.
func (g *Guard) soft(p *recovery.Plan, o recovery.Outcome) error {
	if o.Blocked {
		d := g.breaker.denial(g.clock.Now(), o.Block)
		d.Set = o.Tripped
		return d
	}
	if o.Soft == 0 {
		return nil
	}
	c := p.Counts[o.Soft-1]
	return g.limitOf(c.Scope).denial(g.clock.Now(), o.SoftCounter)
}

// SMS refuses a message to a blocked destination prefix and otherwise
// counts it for phone against its limit, then against its country's share
// and the spend ceilings, and then against the global budget, which a
// refused message does not spend. A notice is never entered, so the
// prefix's breaker does not count it; it names no client, so no network's
// share either.
func (g *Guard) SMS(ctx context.Context, phone, prefix string) error {
	counts := slices.Concat(
		[]recovery.Count{g.startPhone.soft(phone, false)},
		g.budget.softs("", recovery.PrefixCountry(prefix), false, g.clock.Now()),
		[]recovery.Count{g.smsGlobal.soft("", false)},
	)
	p := recovery.Plan{Counts: counts, Breaker: g.breaker.step(prefix, recovery.BreakerPeek)}
	o, err := g.run(ctx, &p)
	if err != nil {
		return err
	}
	return g.soft(&p, o)
}

// Verify refuses a blocked client or a locked account, counts the check
// against the client, counts the flow's attempt and then strikes the client
// and the account, in one plan: recovery.ErrNotFound for a missing or
// expired flow (its client still counted), recovery.ErrExhausted (with the
// flow as it was) when this attempt was one too many, a *Denial (with the
// flow, if it was found), or the flow with the attempt counted and the
// Guess. Each strike is one atomic step with checking that key's lock, so
// no number of concurrent guesses passes a threshold.
func (g *Guard) Verify(ctx context.Context, ip, id string, maxAttempts int) (recovery.Flow, recovery.Guess, error) {
	client := ClientKey(ip)
	p := recovery.Plan{
		Locks:       g.lockChecks(client, ""),
		Counts:      []recovery.Count{g.verifyIP.count(client, false)},
		Op:          recovery.OpAttempt,
		FlowID:      id,
		MaxAttempts: maxAttempts,
		Strikes: []recovery.StrikeStep{
			{Kind: g.ipBlock.kind, Key: client, Policy: g.ipBlock.policy},
			{Kind: g.lockout.kind, OfFlow: true, Policy: g.lockout.policy},
		},
	}
	o, err := g.run(ctx, &p)
	switch {
	case err != nil:
		return o.Flow, recovery.Guess{}, err
	case o.Exhausted:
		return o.Flow, recovery.Guess{}, recovery.ErrExhausted
	case o.FlowErr != nil:
		return o.Flow, recovery.Guess{}, o.FlowErr
	}
	guess := g.guess(o)
	if o.Full {
		guess.Uncounted = &recovery.Denial{Reason: recovery.ErrFull, Scope: ScopeLockout, RetryAfter: fullRetry}
	}
	return o.Flow, guess, nil
}

// Right follows a Verify whose code was right, for the flow f it returned:
// it consumes the flow and, only if this call did, ends the account's run
// of wrong codes (lifting a lock its last guess set), takes the client's
// strike for that guess back, counts a code entered for the flow's prefix
// and stores t, in one plan. It reports whether this call consumed the
// flow.
func (g *Guard) Right(ctx context.Context, ip string, f recovery.Flow, t recovery.Token) (bool, error) {
	p := recovery.Plan{Op: recovery.OpFinish, FlowID: f.ID, Token: t, Ends: []recovery.EndStep{
		{Kind: g.lockout.kind, OfFlow: true},
		{Kind: g.ipBlock.kind, Key: ClientKey(ip), Forgive: true, Policy: g.ipBlock.policy},
	}, Breaker: g.breaker.step(f.Prefix, recovery.BreakerEntered)}
	o, err := g.run(ctx, &p)
	if err != nil {
		return false, err
	}
	return o.Won, nil
}

// lockChecks checks the client's block and then the account's lock: the
// given account's, or with none given the flow's.
func (g *Guard) lockChecks(client, account string) []recovery.LockCheck {
	return []recovery.LockCheck{
		{Kind: g.ipBlock.kind, Key: client},
		{Kind: g.lockout.kind, Key: account, OfFlow: account == ""},
	}
}

// run runs p and turns a refusal into its *Denial.
func (g *Guard) run(ctx context.Context, p *recovery.Plan) (recovery.Outcome, error) {
	o, err := g.store.RunPlan(ctx, p)
	if err != nil {
		return o, fmt.Errorf("checking limits: %w", err)
	}
	now := g.clock.Now()
	switch o.Refused {
	case recovery.StepLock:
		t, err := g.threshold(p.Locks[o.Index].Kind)
		if err != nil {
			return o, err
		}
		return o, t.denial(now, o.Lock)
	case recovery.StepCount:
		return o, g.limitOf(p.Counts[o.Index].Scope).denial(now, o.Counter)
	case recovery.StepFull:
		return o, &recovery.Denial{Reason: recovery.ErrFull, Scope: ScopeFlows, RetryAfter: max(time.Second, o.RetryAt.Sub(now))}
	case recovery.StepStrike:
		t, err := g.threshold(p.Strikes[o.Index].Kind)
		if err != nil {
			return o, err
		}
		if o.Full {
			return o, &recovery.Denial{Reason: recovery.ErrFull, Scope: t.scope, RetryAfter: fullRetry}
		}
		return o, t.denial(now, o.Lock)
	}
	return o, nil
}

// guess is the Guess of a plan's strikes: the block and lock they set.
func (g *Guard) guess(o recovery.Outcome) recovery.Guess {
	var set []error
	for _, s := range o.Strikes {
		if !s.Set {
			continue
		}
		if t, err := g.threshold(s.Lock.Kind); err == nil {
			// From the instant the store set it, so that a lock of 30m is
			// told as 30m, not a second more.
			set = append(set, t.denial(s.Lock.Since, s.Lock))
		}
	}
	switch len(set) {
	case 0:
		return recovery.Guess{}
	case 1:
		return recovery.Guess{Set: set[0]}
	}
	return recovery.Guess{Set: errors.Join(set...)}
}

func (g *Guard) limitOf(scope string) limit {
	for _, l := range []limit{g.startIP, g.startAccount, g.startPhone, g.verifyIP, g.smsGlobal} {
		if l.scope == scope {
			return l
		}
	}
	return limit{scope: scope}
}

// count is l's counter for key, peeked or counted.
func (l limit) count(key string, peek bool) recovery.Count {
	return recovery.Count{Scope: l.scope, Key: key, Rate: l.rate, Peek: peek}
}

// soft is l's counter for key that reports its refusal without refusing the
// plan, peeked or counted.
func (l limit) soft(key string, peek bool) recovery.Count {
	c := l.count(key, peek)
	c.Soft = true
	return c
}

// fullRetry is the wait a client is told when the lock store is full: long
// enough for blocks and windows to end and make room.
const fullRetry = time.Minute

// Locks returns the locks of kind (recovery.KindAccount, recovery.KindIP
// or recovery.KindPrefix) in force, a prefix's with its country.
func (g *Guard) Locks(ctx context.Context, kind string) ([]recovery.Lock, error) {
	t, err := g.threshold(kind)
	if err != nil {
		return nil, err
	}
	locks, err := g.store.ListLocks(ctx, kind)
	if err != nil {
		return nil, fmt.Errorf("listing %s locks: %w", kind, err)
	}
	for i := range locks {
		if locks[i].Reason == "" {
			locks[i].Reason = t.why
		}
		if kind == recovery.KindPrefix {
			locks[i].Country = recovery.PrefixCountry(locks[i].Key)
		}
	}
	return locks, nil
}

// Impose locks the recovery of account, which must be normalised, for d,
// or until support lifts it when d is 0: the lock support imposes. It is
// an account lock like a lockout's, which every check refuses and Lift
// ends, and it never shortens a lock in force. It returns the lock now in
// force and whether it is new (no lock was in force before), when the
// owner is told. When the store has no room for the account's record, the
// error wraps recovery.ErrFull.
func (g *Guard) Impose(ctx context.Context, account string, d time.Duration) (recovery.Lock, bool, error) {
	if d < 0 {
		return recovery.Lock{}, false, fmt.Errorf("imposing %s lock: negative duration %s", recovery.KindAccount, d)
	}
	l, set, err := g.store.Impose(ctx, g.lockout.kind, account, d)
	if err != nil {
		return recovery.Lock{}, false, fmt.Errorf("imposing %s lock: %w", recovery.KindAccount, err)
	}
	return l, set, nil
}

// Lift removes the lock of kind on key and ends its run of wrong codes, so
// the person gets a fresh set of tries; it reports whether a lock was in
// force. An IP key is an address or a key from Locks, normalised by
// ClientKey; an account must be normalised already. Lifting a prefix's
// block ends its run of blocks: its next one is a first one again.
func (g *Guard) Lift(ctx context.Context, kind, key string) (bool, error) {
	t, err := g.threshold(kind)
	if err != nil {
		return false, err
	}
	if kind == recovery.KindIP {
		key = ClientKey(key)
	}
	lifted, err := g.store.EndRun(ctx, t.kind, key)
	if err != nil {
		return false, fmt.Errorf("lifting %s lock: %w", kind, err)
	}
	return lifted, nil
}

// ClientKey is the key a client IP is counted and blocked under: an IPv4
// address as it is (IPv4-mapped IPv6 included), an IPv6 address as its /64,
// which one subscriber usually holds whole, without its zone. A host:port is
// reduced to the host. Anything else, a key ClientKey returned among them,
// is returned unchanged.
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		ap, perr := netip.ParseAddrPort(ip)
		if perr != nil {
			return ip
		}
		addr = ap.Addr()
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return addr.String()
	}
	var buf [len("ffff:ffff:ffff:ffff::/64")]byte // saves Prefix.String's second allocation
	return string(netip.PrefixFrom(addr, 64).Masked().AppendTo(buf[:0]))
}

func (g *Guard) threshold(kind string) (threshold, error) {
	switch kind {
	case recovery.KindAccount:
		return g.lockout, nil
	case recovery.KindIP:
		return g.ipBlock, nil
	case recovery.KindPrefix:
		return g.breaker.threshold, nil
	}
	return threshold{}, fmt.Errorf("unknown lock kind %q", kind)
}

func (l limit) denial(now time.Time, c ulimiter.Context) *recovery.Denial {
	reset := time.Unix(c.Reset, 0)
	if isMoney(l.scope) {
		// A sum of money is no count of requests to tell a client.
		c.Limit, c.Remaining = 0, 0
	}
	return &recovery.Denial{
		Reason:     recovery.ErrRateLimited,
		Scope:      l.scope,
		RetryAfter: retryAfter(now, reset),
		Limit:      c.Limit,
		Remaining:  c.Remaining,
		Reset:      reset,
	}
}

func (t threshold) denial(now time.Time, l recovery.Lock) *recovery.Denial {
	if l.Permanent {
		// No end to wait for: the longest lock is what a person is told,
		// and the answer says that support lifts it.
		return &recovery.Denial{Reason: t.reason, Scope: t.scope, RetryAfter: t.policy.MaxDuration, Permanent: true}
	}
	return &recovery.Denial{
		Reason:     t.reason,
		Scope:      t.scope,
		RetryAfter: retryAfter(now, l.Until),
		Reset:      l.Until,
	}
}

// retryAfter is the wait until t in whole seconds, rounded up and at least
// one. Counter stores give the end of a window in whole seconds, rounded
// down, so a client that waits exactly this long may be up to a second
// early and is then told to wait one more.
func retryAfter(now, t time.Time) time.Duration {
	d := t.Sub(now)
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// Interface guards
var _ recovery.Guard = (*Guard)(nil)
