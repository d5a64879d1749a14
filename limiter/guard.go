package limiter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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
	return errors.Join(errs...)
}

// Guard is the recovery.Guard of rate limits, account locks and IP blocks.
// It counts requests in a ulule limiter.Store and keeps the wrong codes and
// the locks they set in a LockStore, apart from those counters: a store
// that forgets counters to stay within its bound never forgets a lock.
//
// Clients are keyed by ClientKey; accounts must arrive normalised, as
// recovery.NormalizeAccount leaves them. Nothing a client does, right or
// wrong, resets the counters of anyone else: only a correct code for an
// account, or Lift, ends the account's run of wrong codes.
type Guard struct {
	counters ulimiter.Store
	locks    LockStore
	plans    PlanStore // locks, when it runs plans; nil otherwise
	clock    recovery.Clock

	startIP, startAccount, startPhone, verifyIP, smsGlobal limit
	lockout, ipBlock                                       threshold
}

// limit is a Rate as the counter store takes it, under its scope's name.
type limit struct {
	scope  string
	prefix string // of the scope's counter keys
	rate   ulimiter.Rate
}

// threshold is a lock policy with the kind of lock it sets and the refusal
// it gives.
type threshold struct {
	scope  string
	kind   string
	reason error
	policy Policy
}

// New returns a Guard over counters and locks, reading the time from clock.
// When locks is a PlanStore, every decision is one of its plans, counters
// included, and counters is not used (it may be nil).
func New(cfg Config, counters ulimiter.Store, locks LockStore, clock recovery.Clock) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("limiter config: %w", err)
	}
	plans, _ := locks.(PlanStore)
	if (counters == nil && plans == nil) || locks == nil || clock == nil {
		return nil, errors.New("limiter: counter store, lock store and clock are required")
	}
	newLimit := func(scope string, r Rate) limit {
		return limit{scope: scope, prefix: scope + ":", rate: ulimiter.Rate{Limit: r.Events, Period: r.Window}}
	}
	return &Guard{
		counters:     counters,
		locks:        locks,
		plans:        plans,
		clock:        clock,
		startIP:      newLimit(ScopeStartIP, cfg.StartIP),
		startAccount: newLimit(ScopeStartAccount, cfg.StartAccount),
		startPhone:   newLimit(ScopeStartPhone, cfg.StartPhone),
		verifyIP:     newLimit(ScopeVerifyIP, cfg.VerifyIP),
		smsGlobal:    newLimit(ScopeSMSGlobal, cfg.SMSGlobal),
		lockout: threshold{scope: ScopeLockout, kind: KindAccount, reason: recovery.ErrLocked, policy: Policy{
			Threshold:   cfg.Lockout.Failures,
			Window:      cfg.Lockout.Window,
			Duration:    cfg.Lockout.Duration,
			MaxDuration: max(cfg.MaxLockDuration, cfg.Lockout.Duration),
			Run:         true,
			Permanent:   cfg.PermanentAfter,
		}},
		ipBlock: threshold{scope: ScopeIPBlock, kind: KindIP, reason: recovery.ErrBlocked, policy: Policy{
			Threshold:   cfg.IPBlock.Failures,
			Window:      cfg.IPBlock.Window,
			Duration:    cfg.IPBlock.Duration,
			MaxDuration: cfg.IPBlock.Duration,
		}},
	}, nil
}

// Start refuses a blocked client, a locked account, and any start while the
// global SMS budget is spent; otherwise it counts the start against the
// client and then the account. A start the client's limit refuses does not
// count against the account, so that one client cannot fill the store with
// account counters.
func (g *Guard) Start(ctx context.Context, ip, account string) error {
	if g.plans != nil {
		p := g.startPlan(ClientKey(ip), account, false)
		p.NewFlowFrom = ip
		_, err := g.run(ctx, &p)
		return err
	}
	now := g.clock.Now()
	client := ClientKey(ip)
	if err := g.checkLocks(ctx, now, client, account); err != nil {
		return err
	}
	// Peeked, not counted: only SMS spends the budget. The budget is global,
	// so this refusal says nothing about the account.
	c, err := g.counters.Peek(ctx, g.smsGlobal.key(""), g.smsGlobal.rate)
	if err != nil {
		return fmt.Errorf("reading %s: %w", g.smsGlobal.scope, err)
	}
	if c.Remaining <= 0 {
		return g.smsGlobal.denial(now, c)
	}
	if err := g.take(ctx, now, g.startIP, client); err != nil {
		return err
	}
	return g.take(ctx, now, g.startAccount, account)
}

// SMS counts a code for phone against its limit and then against the global
// budget, which a refused phone does not spend.
func (g *Guard) SMS(ctx context.Context, phone string) error {
	if g.plans != nil {
		p := Plan{Counts: []Count{g.startPhone.count(phone, false), g.smsGlobal.count("", false)}}
		_, err := g.run(ctx, &p)
		return err
	}
	now := g.clock.Now()
	if err := g.take(ctx, now, g.startPhone, phone); err != nil {
		return err
	}
	return g.take(ctx, now, g.smsGlobal, "")
}

// Verify refuses a blocked client or a locked account, and otherwise counts
// the check against the client.
func (g *Guard) Verify(ctx context.Context, ip, account string) error {
	client := ClientKey(ip)
	if g.plans != nil {
		p := Plan{Locks: g.lockChecks(client, account, false), Counts: []Count{g.verifyIP.count(client, false)}}
		_, err := g.run(ctx, &p)
		return err
	}
	now := g.clock.Now()
	if err := g.checkLocks(ctx, now, client, account); err != nil {
		return err
	}
	return g.take(ctx, now, g.verifyIP, client)
}

// Guess counts a code about to be compared against the client and then the
// account. Each count is one atomic step with checking that key's lock, so
// no number of concurrent guesses passes a threshold. A blocked client or
// a locked account refuses the guess; a client's strike for a guess the
// account's lock refuses is taken back, since no code was compared. What
// the guess set joins the block first, as Start and Verify report them.
func (g *Guard) Guess(ctx context.Context, ip, account string) (recovery.Guess, error) {
	now := g.clock.Now()
	client := ClientKey(ip)
	if g.plans != nil {
		p := Plan{Strikes: g.strikeSteps(client, account, false)}
		o, err := g.run(ctx, &p)
		if err != nil {
			return recovery.Guess{}, err
		}
		return g.guess(o), nil
	}
	blocked, err := g.strike(ctx, now, g.ipBlock, client)
	if err != nil {
		return recovery.Guess{}, err
	}
	locked, err := g.strike(ctx, now, g.lockout, account)
	if err != nil {
		if ferr := g.locks.Forgive(ctx, g.ipBlock.kind, client, g.ipBlock.policy); ferr != nil {
			return recovery.Guess{}, fmt.Errorf("taking back %s strike: %w", g.ipBlock.scope, ferr)
		}
		return recovery.Guess{}, err
	}
	var set []error // as errors, never a nil *Denial
	for _, d := range []*recovery.Denial{blocked, locked} {
		if d != nil {
			set = append(set, d)
		}
	}
	switch len(set) {
	case 0:
		return recovery.Guess{}, nil
	case 1:
		return recovery.Guess{Set: set[0]}, nil
	}
	return recovery.Guess{Set: errors.Join(set...)}, nil
}

// Right ends the account's run of wrong codes, lifting a lock its last guess
// set, and takes the client's strike for that guess back.
func (g *Guard) Right(ctx context.Context, ip, account string) error {
	if g.plans != nil {
		p := Plan{Ends: g.endSteps(ClientKey(ip), account, false)}
		_, err := g.run(ctx, &p)
		return err
	}
	if _, err := g.locks.EndRun(ctx, g.lockout.kind, account); err != nil {
		return fmt.Errorf("ending %s run: %w", g.lockout.scope, err)
	}
	if err := g.locks.Forgive(ctx, g.ipBlock.kind, ClientKey(ip), g.ipBlock.policy); err != nil {
		return fmt.Errorf("taking back %s strike: %w", g.ipBlock.scope, err)
	}
	return nil
}

// strike counts one strike against key under t. A lock in force, or no room
// for a new record, is returned as the error; a lock this strike set is
// returned as the first result.
func (g *Guard) strike(ctx context.Context, now time.Time, t threshold, key string) (*recovery.Denial, error) {
	s, err := g.locks.Strike(ctx, t.kind, key, t.policy)
	switch {
	case errors.Is(err, recovery.ErrFull):
		return nil, &recovery.Denial{Reason: recovery.ErrFull, Scope: t.scope, RetryAfter: fullRetry}
	case err != nil:
		return nil, fmt.Errorf("counting %s: %w", t.scope, err)
	case s.Refused:
		return nil, t.denial(now, s.Lock)
	case s.Set:
		// From the instant the store set it, so that a lock of 30m is told
		// as 30m, not a second more.
		return t.denial(s.Lock.Since, s.Lock), nil
	}
	return nil, nil
}

// fullRetry is the wait a client is told when the lock store is full: long
// enough for blocks and windows to end and make room.
const fullRetry = time.Minute

// Locks returns the locks of kind (KindAccount or KindIP) in force.
func (g *Guard) Locks(ctx context.Context, kind string) ([]Lock, error) {
	if _, err := g.threshold(kind); err != nil {
		return nil, err
	}
	locks, err := g.locks.ListLocks(ctx, kind)
	if err != nil {
		return nil, fmt.Errorf("listing %s locks: %w", kind, err)
	}
	for i := range locks {
		if locks[i].Reason == "" {
			locks[i].Reason = ReasonWrongCodes
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
func (g *Guard) Impose(ctx context.Context, account string, d time.Duration) (Lock, bool, error) {
	if d < 0 {
		return Lock{}, false, fmt.Errorf("imposing %s lock: negative duration %s", KindAccount, d)
	}
	l, set, err := g.locks.Impose(ctx, g.lockout.kind, account, d)
	if err != nil {
		return Lock{}, false, fmt.Errorf("imposing %s lock: %w", KindAccount, err)
	}
	return l, set, nil
}

// Lift removes the lock of kind on key and ends its run of wrong codes, so
// the person gets a fresh set of tries; it reports whether a lock was in
// force. An IP key is an address or a key from Locks, normalised by
// ClientKey; an account must be normalised already.
func (g *Guard) Lift(ctx context.Context, kind, key string) (bool, error) {
	t, err := g.threshold(kind)
	if err != nil {
		return false, err
	}
	if kind == KindIP {
		key = ClientKey(key)
	}
	lifted, err := g.locks.EndRun(ctx, t.kind, key)
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
	case KindAccount:
		return g.lockout, nil
	case KindIP:
		return g.ipBlock, nil
	}
	return threshold{}, fmt.Errorf("unknown lock kind %q", kind)
}

// checkLocks refuses a blocked client or a locked account, in that order.
func (g *Guard) checkLocks(ctx context.Context, now time.Time, client, account string) error {
	for _, c := range []struct {
		t   threshold
		key string
	}{
		{g.ipBlock, client},
		{g.lockout, account},
	} {
		if c.key == "" { // an unknown flow: no account to check
			continue
		}
		l, ok, err := g.locks.GetLock(ctx, c.t.kind, c.key)
		if err != nil {
			return fmt.Errorf("reading %s lock: %w", c.t.kind, err)
		}
		if ok {
			return c.t.denial(now, l)
		}
	}
	return nil
}

// take counts one event against l for key and refuses it when over l.
func (g *Guard) take(ctx context.Context, now time.Time, l limit, key string) error {
	c, err := g.counters.Get(ctx, l.key(key), l.rate)
	if err != nil {
		return fmt.Errorf("counting %s: %w", l.scope, err)
	}
	if c.Reached {
		return l.denial(now, c)
	}
	return nil
}

// key is the counter key of k under l's scope. The global budget's key is
// the bare prefix, which costs no allocation.
func (l limit) key(k string) string {
	return l.prefix + k
}

func (l limit) denial(now time.Time, c ulimiter.Context) *recovery.Denial {
	reset := time.Unix(c.Reset, 0)
	return &recovery.Denial{
		Reason:     recovery.ErrRateLimited,
		Scope:      l.scope,
		RetryAfter: retryAfter(now, reset),
		Limit:      c.Limit,
		Remaining:  c.Remaining,
		Reset:      reset,
	}
}

func (t threshold) denial(now time.Time, l Lock) *recovery.Denial {
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
