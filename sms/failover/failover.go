// Package failover is the SMS sender http.handlers.sms_recovery.senders.failover:
// senders tried in order, each behind a circuit breaker of its own, so that
// a message the first one cannot send goes out through the next, and never
// through two.
//
// A message goes to the first sender whose breaker is closed. When that
// sender did not take it, the next one is tried with the same message
// under the same idempotency key (sms.IdempotencyKey); when it did, or
// refused the message itself, that is the end. What counts as what is
// judge's to say (judge.go):
//
//   - sent: the sender accepted it;
//   - refused: a permanent refusal of the message itself (400, 422, a
//     number the sender cannot read; an accepted message whose answer
//     could not be read): every other provider would refuse it too, or
//     send it twice, so no other is tried;
//   - failed: the sender did not take it, and said so or could not have:
//     408, 429, 5xx other than 504, a refusal of the gateway rather than of
//     the message (401 key, 402 balance, 403 not allowed, 404 and 405 wrong
//     endpoint, 407 proxy, 421 wrong region), or no answer to a request
//     that never left this machine whole (refused connection, DNS, TLS);
//     the next sender is tried;
//   - unanswered: the request went out and no answer came back (a timeout,
//     a connection cut after the request was written, a 504 from a proxy
//     in front of the provider): the provider may have sent the SMS. The
//     message is pinned to that sender, which alone tries it again, under
//     the same key, on every later try of the queue, and no other sender
//     ever sees it.
//
// The failover is an sms.Router: the queue in front of it keeps no breaker
// of its own, and each sender's try is bounded by sms.DefaultAttemptTimeout
// and reported as an sms.Try with the sender's position. Every breaker open
// answers sms.ErrCircuitOpen; every sender refusing the gateway for good,
// a permanent error; anything else an error worth retrying, so that the
// queue keeps the message.
//
// It never logs; its errors hold the senders' own, which hold no message
// body, phone number or key.
package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/sony/gobreaker/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

func init() {
	caddy.RegisterModule(new(Failover))
}

const name = "failover"

// Failover sends each message through the first of its senders that takes
// it. JSON: {"provider": "failover", "senders": [{"provider":
// "messagebird", ...}, {"provider": "messagebird", ...}]}.
type Failover struct {
	// SendersRaw are the senders, first choice first: modules of the
	// namespace http.handlers.sms_recovery.senders, each named by its
	// "provider". At least two, none of them a failover. Required.
	SendersRaw []json.RawMessage `json:"senders,omitempty" caddy:"namespace=http.handlers.sms_recovery.senders inline_key=provider"`

	routes []*route
	pins   pins

	// Settings a test may set before Provision; zero takes the default.
	threshold int            // sms.DefaultBreakerThreshold
	cooldown  time.Duration  // sms.DefaultBreakerCooldown
	timeout   time.Duration  // sms.DefaultAttemptTimeout
	clock     recovery.Clock // the wall clock, for how long a pin lasts
}

// route is one sender and its breaker.
type route struct {
	name      string // the module's name, such as "messagebird"
	position  int    // from 1
	d         sms.Deliverer
	inProcess bool // no request to bound (the outbox)
	breaker   *sms.Breaker
}

// CaddyModule returns the Caddy module information.
func (*Failover) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.Namespace + "." + name,
		New: func() caddy.Module { return new(Failover) },
	}
}

// Provision loads the senders and gives each a breaker.
func (f *Failover) Provision(ctx caddy.Context) error {
	f.threshold = cmpOr(f.threshold, sms.DefaultBreakerThreshold)
	f.cooldown = cmpOr(f.cooldown, sms.DefaultBreakerCooldown)
	f.timeout = cmpOr(f.timeout, sms.DefaultAttemptTimeout)
	if f.clock == nil {
		f.clock = clock.Real{}
	}
	mods, err := ctx.LoadModule(f, "SendersRaw")
	if err != nil {
		return fmt.Errorf("sms failover: %w", err)
	}
	for i, mod := range mods.([]any) {
		if _, nested := mod.(*Failover); nested {
			return fmt.Errorf("sms failover: sender %d is a failover: list its senders here instead", i+1)
		}
		d, ok := mod.(sms.Deliverer)
		if !ok {
			return fmt.Errorf("sms failover: sender %d, module %s, is not a sender (it has no Deliver method)", i+1, caddy.GetModuleID(mod))
		}
		ip, _ := mod.(sms.InProcess)
		r := &route{name: caddy.GetModuleName(mod), position: i + 1, d: d, inProcess: ip != nil && ip.InProcess(),
			breaker: sms.NewBreaker(f.threshold, f.cooldown)}
		f.routes = append(f.routes, r)
		// LoadModule emptied SendersRaw. The gateway keys the queue it
		// keeps across reloads by this module's JSON, which must
		// therefore still hold every sender's settings, as provisioned.
		f.SendersRaw = append(f.SendersRaw, caddyconfig.JSONModuleObject(mod, "provider", r.name, nil))
	}
	return nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Validate checks that there is something to fail over to.
func (f *Failover) Validate() error {
	if len(f.routes) < 2 {
		return fmt.Errorf("sms failover: at least two senders, first choice first (got %d); one sender goes on its own line, sms <name>", len(f.routes))
	}
	return nil
}

// Cleanup cleans the senders up. Caddy cleans them up with the config
// already; the gateway calls Cleanup again once the queue that kept
// delivering through them has drained (sms.Namespace).
func (f *Failover) Cleanup() error {
	var errs []error
	for _, r := range f.routes {
		if c, ok := r.d.(caddy.CleanerUpper); ok {
			errs = append(errs, c.Cleanup())
		}
	}
	return errors.Join(errs...)
}

// CircuitOpen reports whether every sender's breaker is open.
func (f *Failover) CircuitOpen() bool {
	for _, r := range f.routes {
		if r.breaker.State() == gobreaker.StateClosed {
			return false
		}
	}
	return true
}

// errNoIdempotencyKey refuses a message without a key: without one, a
// message a sender may have sent could not be told from a new one.
var errNoIdempotencyKey = errors.New("no idempotency key: deliver through an sms.Queue, or name one with sms.WithIdempotencyKey")

// Deliver sends m through the first sender that takes it, or through the
// one it is pinned to.
func (f *Failover) Deliver(ctx context.Context, m recovery.Message) error {
	key := sms.IdempotencyKey(ctx)
	if key == "" {
		return &sms.Error{Provider: name, Permanent: true, Err: errNoIdempotencyKey}
	}
	if r := f.pins.get(key); r != nil {
		return f.again(ctx, r, m, key)
	}
	var errs []error  // of the senders that failed
	refusedUs := true // every sender tried refused the gateway for good
	for _, r := range f.routes {
		v, err := f.try(ctx, r, m)
		switch v {
		case sent, refused:
			return err
		case unanswered:
			now := f.clock.Now()
			f.pins.put(key, r, f.pinnedUntil(m, now), now)
			return err
		case failed:
			errs = append(errs, fmt.Errorf("sender %d: %w", r.position, err))
			refusedUs = refusedUs && permanent(err)
		}
		if ctx.Err() != nil {
			return ctx.Err() // the queue is closing: it keeps nothing
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("sms failover: every sender's breaker is open: %w", sms.ErrCircuitOpen)
	}
	return &sms.Error{
		Provider:   name,
		Permanent:  refusedUs && len(errs) == len(f.routes),
		RetryAfter: soonest(errs),
		Detail:     "no sender took the message",
		Err:        joined(errs),
	}
}

// again tries m, under key, at r alone: the sender that may have sent it.
func (f *Failover) again(ctx context.Context, r *route, m recovery.Message, key string) error {
	v, err := f.try(ctx, r, m)
	switch {
	case v == resting:
		return fmt.Errorf("sms failover: sender %d (%s), which may have sent this message already, is resting: %w",
			r.position, r.name, sms.ErrCircuitOpen)
	case v == sent || permanent(err):
		f.pins.drop(key)
	}
	return err
}

// pinLife is how long a message without an expiry stays pinned: far longer
// than a queue tries one (5 tries with backoff capped at 30s, each try
// bounded by 15s: under 3 minutes at the defaults).
const pinLife = time.Hour

func (f *Failover) pinnedUntil(m recovery.Message, now time.Time) time.Time {
	if !m.ExpiresAt.IsZero() {
		return m.ExpiresAt
	}
	return now.Add(pinLife)
}

// try hands m to r once, unless its breaker is open, tells its breaker and
// the queue's observer how it went, and returns the verdict.
func (f *Failover) try(ctx context.Context, r *route, m recovery.Message) (verdict, error) {
	done, refusedNow := r.breaker.Allow()
	if refusedNow != nil {
		f.report(ctx, r, m, resting, sms.ErrCircuitOpen)
		return resting, sms.ErrCircuitOpen
	}
	var w sendWatch
	tctx := w.trace(ctx)
	if !r.inProcess {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(tctx, f.timeout)
		defer cancel()
	}
	err := r.d.Deliver(tctx, m)
	v := judge(err, &w)
	switch {
	case ctx.Err() != nil && err != nil:
		done(sms.ErrAbandoned) // the queue is closing: says nothing of r
		return v, err
	case v == sent || v == refused:
		done(nil) // the provider answered
	default:
		done(errNotTaken)
	}
	f.report(ctx, r, m, v, err)
	return v, err
}

// errNotTaken tells a breaker that its provider did not take a message:
// a failure, whatever the provider said.
var errNotTaken = errors.New("the sender did not take the message")

func (f *Failover) report(ctx context.Context, r *route, m recovery.Message, v verdict, err error) {
	t := sms.Try{Provider: r.name, Position: r.position, Result: v.result(), Reference: m.Reference, Err: err}
	var perr *sms.Error
	if errors.As(err, &perr) {
		t.Status = perr.Status
	}
	sms.ReportTry(ctx, t)
}

// soonest is the shortest wait that one of the senders in errs asked for:
// any of them may take the message once its own wait is over. 0 when one
// named none.
func soonest(errs []error) time.Duration {
	wait := time.Duration(-1)
	for _, err := range errs {
		var perr *sms.Error
		d := time.Duration(0)
		if errors.As(err, &perr) {
			d = perr.RetryAfter
		}
		if wait < 0 || d < wait {
			wait = d
		}
	}
	return max(wait, 0)
}

// joined is errors that read on one line, for a log.
type joined []error

func (j joined) Error() string {
	s := make([]string, len(j))
	for i, err := range j {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (j joined) Unwrap() []error { return j }

// permanent reports whether err is an *sms.Error with Permanent set.
func permanent(err error) bool {
	var perr *sms.Error
	return errors.As(err, &perr) && perr.Permanent
}

// UnmarshalCaddyfile reads
//
//	sms failover {
//	    <sender> ...              # first choice: a line as after "sms", such as
//	    <sender> ...              # messagebird { ... }, http <url> { ... }
//	    ...                       # or outbox <path>; at least two
//	}
func (f *Failover) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("sms failover: takes no argument, only a block of senders (got '%s')", d.Val())
	}
	for d.NextBlock(0) {
		if d.Val() == name {
			return d.Err("sms failover: a failover cannot hold another: list its senders here instead")
		}
		raw, err := cfparse.GuestHere(d, "sms failover", sms.Namespace, "provider", "sender")
		if err != nil {
			return err
		}
		f.SendersRaw = append(f.SendersRaw, raw)
	}
	if len(f.SendersRaw) < 2 {
		return d.Errf("sms failover: at least two senders, one per line, first choice first (got %d)", len(f.SendersRaw))
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Failover)(nil)
	_ caddy.Validator    = (*Failover)(nil)
	_ caddy.CleanerUpper = (*Failover)(nil)
	_ cf.Unmarshaler     = (*Failover)(nil)
	_ sms.Router         = (*Failover)(nil)
)
