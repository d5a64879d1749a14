package recovery_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

// The numbers of the pumping simulation: GB mobiles under +447400, whose
// codes nobody enters, as busy a prefix under +447401 whose codes are
// mostly entered, and a few Dutch mobiles.
const (
	pumpedNumber = "+4474001%05d"
	normalNumber = "+4474011%05d"
	otherNumber  = "+316120%05d"
)

// recorder keeps the events it observes.
type recorder struct {
	mu     sync.Mutex
	events []recovery.Event
}

func (r *recorder) Observe(_ context.Context, e recovery.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) named(name string) []recovery.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recovery.Event
	for _, e := range r.events {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// pumping is the flow under the breaker's defaults, every other limit out
// of reach, with the phone policy of the gateway and a directory of
// thousands of accounts under each prefix.
type pumping struct {
	t      *testing.T
	svc    *recovery.Service
	guard  *limiter.Guard
	clock  *clock.Manual
	sent   *outbox
	events *recorder
	cfg    limiter.Breaker
	n      int // accounts of each kind started
}

func newPumping(t *testing.T) *pumping {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	store, err := memory.New(100_000, clk)
	if err != nil {
		t.Fatal(err)
	}
	lcfg := limiter.DefaultConfig()
	high := limiter.Rate{Events: 1 << 30, Window: time.Hour}
	lcfg.StartIP, lcfg.StartAccount, lcfg.StartPhone, lcfg.VerifyIP, lcfg.SMSGlobal = high, high, high, high, high
	guard, err := limiter.New(lcfg, store, clk)
	if err != nil {
		t.Fatal(err)
	}
	phones, err := directory.NewPhonePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	book := &phonebook{entries: map[string]recovery.Entry{}}
	for i := range 5000 {
		for kind, number := range map[string]string{"pumped": pumpedNumber, "normal": normalNumber, "other": otherNumber} {
			book.entries[fmt.Sprintf("%s%d@example.com", kind, i)] = recovery.Entry{Phone: fmt.Sprintf(number, i)}
		}
	}
	keys, _ := recovery.NewKeyring([]byte(strings.Repeat("k", 32)))
	msgs, _ := recovery.NewMessages(recovery.MessageConfig{})
	cfg := testConfig()
	cfg.PrefixDigits = recovery.DefaultPrefixDigits
	p := &pumping{t: t, guard: guard, clock: clk, sent: &outbox{}, events: &recorder{}, cfg: lcfg.Breaker}
	p.svc, err = recovery.New(cfg, recovery.Deps{
		Store: store, Directory: book, Phones: phones, Sender: p.sent, Guard: guard, Observer: p.events,
		Messages: msgs, Keys: keys, Clock: clk, Rand: newSeeded(7),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts the flow of account, a second after the one before, and
// reports whether its code went out.
func (p *pumping) start(account string) (recovery.Started, bool) {
	p.t.Helper()
	p.clock.Advance(time.Second)
	before := p.sent.count()
	s, err := p.svc.Start(context.Background(), recovery.StartRequest{Account: account, ClientIP: ip, PublicURL: publicURL})
	if err != nil {
		p.t.Fatalf("start %s: %v", account, err)
	}
	if s.ExpiresIn != 5*time.Minute || len(s.FlowID) != 22 {
		p.t.Fatalf("start %s answered %+v, unlike any other start", account, s)
	}
	return s, p.sent.count() > before
}

// count is how many messages o delivered.
func (o *outbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

// newestCode is the code of the newest message o delivered.
func (o *outbox) newestCode(t *testing.T) string {
	t.Helper()
	o.mu.Lock()
	body := o.msgs[len(o.msgs)-1].Body
	o.mu.Unlock()
	m := codeLine.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no code line in %q", body)
	}
	return m[1]
}

// round starts n pumped accounts, none entered, each followed by a normal
// one, three in five of them entered, and every fortieth by another.
// Every code but the pumped ones must go out. It returns the pumped codes
// that went out.
func (p *pumping) round(n int) int {
	p.t.Helper()
	sent := 0
	for i := range n {
		p.n++
		if _, ok := p.start(fmt.Sprintf("pumped%d@example.com", p.n)); ok {
			sent++
		}
		s, ok := p.start(fmt.Sprintf("normal%d@example.com", p.n))
		if !ok {
			p.t.Fatalf("the code of normal%d was not sent", p.n)
		}
		if i%5 < 3 {
			if _, err := p.svc.Verify(context.Background(), s.FlowID, p.sent.newestCode(p.t), ip); err != nil {
				p.t.Fatalf("verify normal%d: %v", p.n, err)
			}
		}
		if i%40 == 0 {
			if _, ok := p.start(fmt.Sprintf("other%d@example.com", p.n)); !ok {
				p.t.Fatalf("the code of other%d was not sent", p.n)
			}
		}
	}
	return sent
}

// TestPumpingSimulation pumps codes to numbers under one prefix, through
// the flow with the gateway's phone policy, and enters none: each window
// lets exactly MinSent-1 of them out before a block, the blocks last 1h,
// then 24h, then until support lifts them, while a prefix as busy whose
// codes are mostly entered, and other prefixes, get every code. Every
// start answers alike, and the events name the prefix, never a number.
func TestPumpingSimulation(t *testing.T) {
	t.Parallel()
	p := newPumping(t)
	k := int(p.cfg.MinSent - 1) // 99 at the defaults
	for block, d := range []time.Duration{p.cfg.Block, p.cfg.LaterBlock, 0} {
		if sent := p.round(k + 400); sent != k {
			t.Fatalf("window %d: %d pumped codes went out, want %d", block+1, sent, k)
		}
		blocks := p.events.named(recovery.EventPrefixBlocked)
		if len(blocks) != block+1 {
			t.Fatalf("%d prefix_blocked events after block %d", len(blocks), block+1)
		}
		e := blocks[block]
		want := "blocked for " + d.String()
		if d == 0 {
			want = "blocked until support lifts it"
		}
		if e.Prefix != "+447400" || e.Phone != "" || e.Account != "" || e.Scope != limiter.ScopeBreaker || !strings.HasSuffix(e.Reason, want) {
			t.Fatalf("prefix_blocked event %+v, want prefix +447400, %q, no number or account", e, want)
		}
		p.clock.Advance(d)
	}
	p.clock.Advance(30 * 24 * time.Hour)
	if sent := p.round(200); sent != 0 {
		t.Fatalf("%d codes went out under a prefix held until support lifts it", sent)
	}
	for _, e := range p.events.named(recovery.EventSMSRefused) {
		if e.Scope != limiter.ScopeBreaker || e.Prefix != "+447400" || e.Reason != "prefix blocked" {
			t.Fatalf("sms_refused %+v, want the pumped prefix's block", e)
		}
	}
	if lifted, err := p.guard.Lift(context.Background(), recovery.KindPrefix, "+447400"); err != nil || !lifted {
		t.Fatalf("Lift: %v, %v", lifted, err)
	}
	if sent := p.round(k); sent != k {
		t.Fatalf("after the lift %d codes went out, want %d", sent, k)
	}
}
