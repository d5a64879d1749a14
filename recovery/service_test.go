package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

// seeded is a deterministic randomness source, safe for concurrent use.
type seeded struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func newSeeded(seed byte) *seeded {
	var s [32]byte
	s[0] = seed
	return &seeded{r: rand.NewChaCha8(s)}
}

func (s *seeded) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Read(p)
}

// outbox records what would be sent.
type outbox struct {
	mu      sync.Mutex
	msgs    []recovery.Message
	refused int // messages their Admit check refused
	decoys  int // decoys, queued and dropped unseen
	fail    error
}

// Send delivers at once, dropping decoys and asking m.Admit first as a
// queue does.
func (o *outbox) Send(ctx context.Context, m recovery.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	if m.Decoy {
		o.decoys++
		return nil
	}
	if m.Admit != nil && m.Admit(ctx) != nil {
		o.refused++
		return nil
	}
	o.msgs = append(o.msgs, m)
	return nil
}

func (o *outbox) all() []recovery.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]recovery.Message(nil), o.msgs...)
}

var codeLine = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)

// lastCode reads the code from the origin-bound last line of the newest message.
func (o *outbox) lastCode(t *testing.T) string {
	t.Helper()
	msgs := o.all()
	if len(msgs) == 0 {
		t.Fatal("no message was sent")
	}
	m := codeLine.FindStringSubmatch(msgs[len(msgs)-1].Body)
	if m == nil {
		t.Fatalf("no code line in %q", msgs[len(msgs)-1].Body)
	}
	return m[1]
}

// phonebook is a map directory.
type phonebook struct {
	entries map[string]recovery.Entry
	err     error
	lookups atomic.Int64
}

func (p *phonebook) Lookup(_ context.Context, account string) (recovery.Entry, error) {
	p.lookups.Add(1)
	if p.err != nil {
		return recovery.Entry{}, p.err
	}
	e, ok := p.entries[account]
	if !ok {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return e, nil
}

// plusOnly accepts any number that starts with "+" and is not on its refuse list.
type plusOnly struct{ refuse map[string]bool }

func (p plusOnly) Check(phone string) (string, error) {
	if !strings.HasPrefix(phone, "+") || p.refuse[phone] {
		return "", errors.New("refused number")
	}
	return phone, nil
}

type fixture struct {
	cfg    recovery.Config
	deps   recovery.Deps
	svc    *recovery.Service
	clock  *clock.Manual
	sent   *outbox
	dir    *phonebook
	store  *memory.Store
	limits limiter.Config
	keys   *recovery.Keyring
}

const (
	alice      = "alice@example.com"
	alicePhone = "+31612345678"
	bob        = "bob@example.com" // in the directory with a refused number
	ip         = "192.0.2.10"
	publicURL  = "https://mail.example.com"
)

func testConfig() recovery.Config {
	return recovery.Config{
		CodeLength:     6,
		CodeTTL:        5 * time.Minute,
		MaxAttempts:    5,
		ResendInterval: time.Minute,
		TokenTTL:       10 * time.Minute,
		TokenLease:     2 * time.Minute,
		SiteName:       "Example Mail",
		Support:        "Call +1 555 0100",
		PathPrefix:     "/recovery",
		NotifyOnReset:  true,
		DefaultLang:    "en",
	}
}

func newFixture(t *testing.T, mutate func(*recovery.Config, *limiter.Config)) *fixture {
	t.Helper()
	c := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	mem, err := memory.New(4096, c)
	if err != nil {
		t.Fatal(err)
	}
	store := mem
	cfg, lcfg := testConfig(), limiter.DefaultConfig()
	lcfg.VerifyIP = limiter.Rate{Events: 10000, Window: time.Hour}
	lcfg.Lockout = limiter.Threshold{Failures: 1000, Window: time.Hour, Duration: time.Hour}
	lcfg.IPBlock = limiter.Threshold{Failures: 1000, Window: time.Hour, Duration: time.Hour}
	if mutate != nil {
		mutate(&cfg, &lcfg)
	}
	guard, err := limiter.New(lcfg, store, c)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := recovery.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recovery.NewMessages(recovery.MessageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		clock: c,
		sent:  &outbox{},
		dir: &phonebook{entries: map[string]recovery.Entry{
			alice: {Phone: alicePhone},
			bob:   {Phone: "+19005550100"},
		}},
		store:  store,
		limits: lcfg,
		keys:   keys,
	}
	f.cfg = cfg
	f.deps = recovery.Deps{
		Store: store, Directory: f.dir, Phones: plusOnly{refuse: map[string]bool{"+19005550100": true}},
		Sender: f.sent, Guard: guard, Messages: msgs, Keys: keys, Clock: c, Rand: newSeeded(1),
	}
	f.svc, err = recovery.New(cfg, f.deps)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) start(t *testing.T, account string) recovery.Started {
	t.Helper()
	s, err := f.svc.Start(context.Background(), recovery.StartRequest{Account: account, ClientIP: ip, PublicURL: publicURL})
	if err != nil {
		t.Fatalf("Start(%q): %v", account, err)
	}
	return s
}

// wrong returns a code of the right shape that is not code.
func wrong(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func TestFullFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, "  Alice@Example.COM ")
	if s.ExpiresIn != 5*time.Minute {
		t.Errorf("ExpiresIn = %v, want 5m", s.ExpiresIn)
	}
	msgs := f.sent.all()
	if len(msgs) != 1 || msgs[0].To != alicePhone || msgs[0].Kind != "code" {
		t.Fatalf("sent %+v, want one code message to %s", msgs, alicePhone)
	}
	wantLink := publicURL + "/recovery/?flow=" + s.FlowID
	if !strings.Contains(msgs[0].Body, wantLink) {
		t.Errorf("body %q lacks link %q", msgs[0].Body, wantLink)
	}
	if msgs[0].Validity != 5*time.Minute || !msgs[0].ExpiresAt.Equal(f.clock.Now().Add(5*time.Minute)) {
		t.Errorf("validity %v expires %v", msgs[0].Validity, msgs[0].ExpiresAt)
	}
	code := f.sent.lastCode(t)

	v, err := f.svc.Verify(ctx, s.FlowID, code, ip)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(v.Token) < 22 || v.ExpiresIn != 10*time.Minute {
		t.Fatalf("token %q expires in %v", v.Token, v.ExpiresIn)
	}
	if _, err := f.svc.Verify(ctx, s.FlowID, code, ip); !errors.Is(err, recovery.ErrExpired) {
		t.Errorf("second Verify = %v, want ErrExpired", err)
	}

	rs, err := f.svc.BeginReset(ctx, v.Token, ip)
	if err != nil {
		t.Fatalf("BeginReset: %v", err)
	}
	if rs.Account != alice {
		t.Errorf("token bound to %q, want %q", rs.Account, alice)
	}
	if err := rs.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginReset(ctx, v.Token, ip); !errors.Is(err, recovery.ErrInvalidToken) {
		t.Errorf("spent token: %v, want ErrInvalidToken", err)
	}
	msgs = f.sent.all()
	if last := msgs[len(msgs)-1]; last.Kind != "notice" || last.To != alicePhone || !strings.Contains(last.Body, "+1 555 0100") {
		t.Errorf("notice = %+v", last)
	}
}

func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	for _, account := range []string{alice, "nobody@example.com", bob} {
		t.Run(account, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			s := f.start(t, account)
			if s.ExpiresIn != 5*time.Minute || len(s.FlowID) != 22 {
				t.Fatalf("Start = %+v", s)
			}
			if got := f.dir.lookups.Load(); got != 1 {
				t.Errorf("directory asked %d times, want 1", got)
			}
			// Every code fails alike, then the flow dies alike.
			for left := 4; left >= 0; left-- {
				_, err := f.svc.Verify(context.Background(), s.FlowID, "999999", ip)
				var ce *recovery.CodeError
				if account == alice && err == nil {
					t.Skip("skipped: 999999, the wrong code this test sends, was the real code (one draw in a million)")
				}
				if !errors.As(err, &ce) || ce.AttemptsLeft != left {
					t.Fatalf("Verify = %v, want %d attempts left", err, left)
				}
			}
			if _, err := f.svc.Verify(context.Background(), s.FlowID, "999999", ip); !errors.Is(err, recovery.ErrExpired) {
				t.Fatalf("exhausted flow: %v, want ErrExpired", err)
			}
			if sent := len(f.sent.all()); (account == alice) != (sent == 1) {
				t.Errorf("%d messages sent for %s", sent, account)
			}
			// Every kind queued one message: the same work, decided later.
			if queued := len(f.sent.all()) + f.sent.refused + f.sent.decoys; queued != 1 {
				t.Errorf("%d messages queued for %s, want 1", queued, account)
			}
		})
	}
}

func TestDecoyNeverVerifies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, "nobody@example.com")
	if fl, err := f.store.Flow(ctx, s.FlowID); err != nil || !fl.Decoy {
		t.Fatalf("flow of an unknown account = %+v, %v; want a decoy", fl, err)
	}
	// A decoy whose code is known, hashed exactly as the flow's would be:
	// even that code must not verify.
	const id, code = "DecoyDecoyDecoyDecoy00", "123456"
	now := f.clock.Now()
	if _, err := f.deps.Guard.StartFlow(ctx, ip, recovery.Flow{
		ID: id, Account: "nobody@example.com", CodeHash: f.keys.HashCode(id, code), Sends: 1, Decoy: true,
		SentAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute),
	}, "decoy"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, id, code, ip); !errors.Is(err, recovery.ErrInvalidCode) {
		t.Fatalf("the decoy's own code: %v, want ErrInvalidCode", err)
	}
}

func TestCodeExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	f.clock.Advance(5*time.Minute + time.Second)
	if _, err := f.svc.Verify(context.Background(), s.FlowID, code, ip); !errors.Is(err, recovery.ErrExpired) {
		t.Fatalf("Verify after code_ttl = %v, want ErrExpired", err)
	}
}

func TestResend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, alice)
	old := f.sent.lastCode(t)

	f.clock.Advance(20 * time.Second)
	_, err := f.svc.Resend(ctx, s.FlowID, ip)
	var d *recovery.Denial
	if !errors.As(err, &d) || !errors.Is(err, recovery.ErrRateLimited) || d.RetryAfter != 40*time.Second {
		t.Fatalf("early Resend = %v, want rate limited for 40s", err)
	}
	// A wrong code before the resend still counts after it.
	if _, err := f.svc.Verify(ctx, s.FlowID, wrong(old), ip); !errors.Is(err, recovery.ErrInvalidCode) {
		t.Fatal(err)
	}
	f.clock.Advance(40 * time.Second)
	if _, err := f.svc.Resend(ctx, s.FlowID, ip); err != nil {
		t.Fatalf("Resend: %v", err)
	}
	if n := len(f.sent.all()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
	code := f.sent.lastCode(t)
	if code != old {
		if _, err := f.svc.Verify(ctx, s.FlowID, old, ip); !errors.Is(err, recovery.ErrInvalidCode) {
			t.Fatalf("old code after resend = %v, want ErrInvalidCode", err)
		}
	}
	// The flow lives code_ttl from the resend.
	f.clock.Advance(4 * time.Minute)
	if _, err := f.svc.Verify(ctx, s.FlowID, code, ip); err != nil {
		t.Fatalf("new code: %v", err)
	}
}

func TestResendDecoyStaysSilent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	s := f.start(t, "nobody@example.com")
	f.clock.Advance(time.Minute)
	r, err := f.svc.Resend(context.Background(), s.FlowID, ip)
	if err != nil || r.FlowID != s.FlowID {
		t.Fatalf("Resend = %+v, %v", r, err)
	}
	if n := len(f.sent.all()); n != 0 {
		t.Fatalf("%d messages sent for an unknown account", n)
	}
}

func TestInvalidInputChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"empty account", func() error {
			_, err := f.svc.Start(ctx, recovery.StartRequest{Account: "  ", ClientIP: ip, PublicURL: publicURL})
			return err
		}, recovery.ErrInvalidRequest},
		{"long account", func() error {
			_, err := f.svc.Start(ctx, recovery.StartRequest{Account: strings.Repeat("a", 255), ClientIP: ip, PublicURL: publicURL})
			return err
		}, recovery.ErrInvalidRequest},
		{"control character", func() error {
			_, err := f.svc.Start(ctx, recovery.StartRequest{Account: "a\x00b", ClientIP: ip, PublicURL: publicURL})
			return err
		}, recovery.ErrInvalidRequest},
		{"letters in code", func() error { _, err := f.svc.Verify(ctx, s.FlowID, "12a456", ip); return err }, recovery.ErrInvalidRequest},
		{"short code", func() error { _, err := f.svc.Verify(ctx, s.FlowID, "12345", ip); return err }, recovery.ErrInvalidRequest},
		{"unicode digits", func() error { _, err := f.svc.Verify(ctx, s.FlowID, "١٢٣٤٥٦", ip); return err }, recovery.ErrInvalidRequest},
		{"bad flow id", func() error { _, err := f.svc.Verify(ctx, "../../etc", code, ip); return err }, recovery.ErrInvalidRequest},
		{"unknown flow", func() error { _, err := f.svc.Verify(ctx, strings.Repeat("A", 22), code, ip); return err }, recovery.ErrExpired},
		{"bad token", func() error { _, err := f.svc.BeginReset(ctx, "nope", ip); return err }, recovery.ErrInvalidToken},
		{"unknown token", func() error { _, err := f.svc.BeginReset(ctx, strings.Repeat("A", 43), ip); return err }, recovery.ErrInvalidToken},
		{"bad public URL", func() error {
			_, err := f.svc.Start(ctx, recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: "javascript:alert(1)"})
			return err
		}, recovery.ErrInvalidRequest},
	}
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// None of that used an attempt: the first wrong code leaves 4.
	_, err := f.svc.Verify(ctx, s.FlowID, wrong(code), ip)
	var ce *recovery.CodeError
	if !errors.As(err, &ce) || ce.AttemptsLeft != 4 {
		t.Fatalf("after bad input: %v, want 4 attempts left", err)
	}
	if n := len(f.sent.all()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}

func TestConcurrentGuessesAreCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	var invalid, expired atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Verify(context.Background(), s.FlowID, wrong(code), ip)
			switch {
			case errors.Is(err, recovery.ErrInvalidCode):
				invalid.Add(1)
			case errors.Is(err, recovery.ErrExpired):
				expired.Add(1)
			default:
				t.Errorf("Verify = %v", err)
			}
		}()
	}
	wg.Wait()
	if invalid.Load() != 5 || expired.Load() != 195 {
		t.Fatalf("%d invalid_code, %d expired; want 5 and 195", invalid.Load(), expired.Load())
	}
	if _, err := f.svc.Verify(context.Background(), s.FlowID, code, ip); !errors.Is(err, recovery.ErrExpired) {
		t.Fatalf("right code after exhaustion = %v, want ErrExpired", err)
	}
}

func TestConcurrentResetsSpendOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, alice)
	v, err := f.svc.Verify(ctx, s.FlowID, f.sent.lastCode(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	var won atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := f.svc.BeginReset(ctx, v.Token, ip)
			if err != nil {
				if !errors.Is(err, recovery.ErrInvalidToken) {
					t.Errorf("BeginReset = %v", err)
				}
				return
			}
			won.Add(1)
			if err := rs.Finish(ctx, true); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d resets went through, want 1", won.Load())
	}
}

func TestFailedUpstreamKeepsToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	s := f.start(t, alice)
	v, err := f.svc.Verify(ctx, s.FlowID, f.sent.lastCode(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.svc.BeginReset(ctx, v.Token, ip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginReset(ctx, v.Token, ip); !errors.Is(err, recovery.ErrInvalidToken) {
		t.Fatalf("token in use: %v, want ErrInvalidToken", err)
	}
	if err := rs.Finish(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sent.all()); n != 1 {
		t.Errorf("a notice went out for a failed reset")
	}
	rs, err = f.svc.BeginReset(ctx, v.Token, ip)
	if err != nil {
		t.Fatalf("token after failed upstream: %v", err)
	}
	_ = rs.Finish(ctx, true)
	// Tokens also expire.
	s = f.start(t, alice)
	v, err = f.svc.Verify(ctx, s.FlowID, f.sent.lastCode(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10*time.Minute + time.Second)
	if _, err := f.svc.BeginReset(ctx, v.Token, ip); !errors.Is(err, recovery.ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	oldKey := []byte(strings.Repeat("k", 32))
	rotated, err := recovery.NewKeyring([]byte(strings.Repeat("n", 32)), oldKey)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := f.store.Flow(context.Background(), s.FlowID)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.MatchCode(s.FlowID, code, fl.CodeHash) {
		t.Error("rotated keyring does not verify a code hashed with the old secret")
	}
	if bytesEqual(rotated.HashCode(s.FlowID, code), fl.CodeHash) {
		t.Error("rotated keyring still hashes with the old secret")
	}
	fresh, _ := recovery.NewKeyring([]byte(strings.Repeat("n", 32)))
	if fresh.MatchCode(s.FlowID, code, fl.CodeHash) {
		t.Error("a keyring without the old secret verifies its hash")
	}
	if _, err := recovery.NewKeyring([]byte("short")); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestLimitsApplyToUnknownAccounts(t *testing.T) {
	t.Parallel()
	for _, account := range []string{alice, "nobody@example.com"} {
		t.Run(account, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			for range 3 {
				f.start(t, account)
			}
			_, err := f.svc.Start(context.Background(), recovery.StartRequest{Account: account, ClientIP: ip, PublicURL: publicURL})
			var d *recovery.Denial
			if !errors.As(err, &d) || d.Scope != "start_account" || d.RetryAfter <= 0 {
				t.Fatalf("4th start = %v, want start_account denial", err)
			}
		})
	}
}

func TestLockoutAfterWrongCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(_ *recovery.Config, l *limiter.Config) {
		l.Lockout = limiter.Threshold{Failures: 3, Window: time.Hour, Duration: 30 * time.Minute}
	})
	ctx := context.Background()
	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	for range 2 {
		if _, err := f.svc.Verify(ctx, s.FlowID, wrong(code), ip); !errors.Is(err, recovery.ErrInvalidCode) {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Verify(ctx, s.FlowID, wrong(code), ip); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("3rd wrong code = %v, want ErrLocked", err)
	}
	if _, err := f.svc.Verify(ctx, s.FlowID, code, ip); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("right code while locked = %v, want ErrLocked", err)
	}
	if _, err := f.svc.Start(ctx, recovery.StartRequest{Account: alice, ClientIP: "198.51.100.7", PublicURL: publicURL}); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("start while locked = %v, want ErrLocked", err)
	}
}

func TestFailingDependencies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.dir.err = errors.New("connection refused")
	_, err := f.svc.Start(context.Background(), recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: publicURL})
	if !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("Start with directory down = %v, want ErrUnavailable", err)
	}

	f = newFixture(t, nil)
	f.sent.fail = recovery.ErrQueueFull
	if _, err := f.svc.Start(context.Background(), recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: publicURL}); err != nil {
		t.Fatalf("Start with a full queue = %v; it must answer like any other start", err)
	}
}

func TestGuardThatCannotDecideFailsClosed(t *testing.T) {
	t.Parallel()
	c := clock.NewManual(time.Now())
	store, _ := memory.New(100, c)
	guard, err := limiter.New(limiter.DefaultConfig(), downStore{store}, c)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := recovery.NewKeyring([]byte(strings.Repeat("k", 32)))
	msgs, _ := recovery.NewMessages(recovery.MessageConfig{})
	svc, err := recovery.New(testConfig(), recovery.Deps{
		Store: store, Directory: &phonebook{}, Phones: plusOnly{}, Sender: &outbox{}, Guard: guard,
		Messages: msgs, Keys: keys, Clock: c, Rand: newSeeded(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Start(context.Background(), recovery.StartRequest{Account: alice, ClientIP: ip, PublicURL: publicURL})
	if !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
	// Each layer names what it did, once: the log line an operator reads.
	if msg := err.Error(); strings.Count(msg, "checking limits") != 1 || !strings.Contains(msg, "store down") {
		t.Fatalf("Start = %q, want the cause and \"checking limits\" once", msg)
	}
	_, err = svc.Verify(context.Background(), strings.Repeat("A", 22), "123456", ip)
	if msg := fmt.Sprint(err); !errors.Is(err, recovery.ErrUnavailable) || strings.Count(msg, "checking limits") != 1 || !strings.Contains(msg, "store down") {
		t.Fatalf("Verify = %q, want ErrUnavailable with the cause and \"checking limits\" once", msg)
	}
}

// downStore is a store whose plans fail: the server behind it is down.
type downStore struct{ *memory.Store }

func (downStore) RunPlan(context.Context, *recovery.Plan) (recovery.Outcome, error) {
	return recovery.Outcome{}, errors.New("store down")
}

func TestCodesAreUniformDigits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *recovery.Config, l *limiter.Config) {
		l.StartIP = limiter.Rate{Events: 1 << 30, Window: time.Hour}
		l.StartAccount = l.StartIP
		l.StartPhone = l.StartIP
		l.SMSGlobal = l.StartIP
		// 2000 codes to one number, none entered, is what the breaker
		// blocks: this test reads the codes themselves.
		l.Breaker.Off = true
	})
	const n = 2000
	var counts [10]int
	for range n {
		f.start(t, alice)
		code := f.sent.lastCode(t)
		if len(code) != 6 {
			t.Fatalf("code %q is not 6 digits", code)
		}
		for _, c := range code {
			counts[c-'0']++
		}
	}
	// 12000 digits: each of ten values is expected 1200 times; a chi-square
	// statistic above 27.9 (9 degrees of freedom, p = 0.001) means bias.
	var chi float64
	for _, c := range counts {
		d := float64(c) - n*6/10.0
		chi += d * d / (n * 6 / 10.0)
	}
	if chi > 27.9 {
		t.Fatalf("digit counts %v look biased (chi-square %.1f)", counts, chi)
	}
}

func TestPhoneLimitDropsTheSMSNotTheAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(_ *recovery.Config, l *limiter.Config) {
		l.StartAccount = limiter.Rate{Events: 100, Window: time.Hour}
		l.StartPhone = limiter.Rate{Events: 2, Window: time.Hour}
	})
	for range 4 {
		if s := f.start(t, alice); s.ExpiresIn != 5*time.Minute {
			t.Fatalf("Start = %+v", s)
		}
	}
	f.sent.mu.Lock()
	defer f.sent.mu.Unlock()
	if len(f.sent.msgs) != 2 || f.sent.refused != 2 {
		t.Fatalf("%d sent, %d refused; want 2 and 2", len(f.sent.msgs), f.sent.refused)
	}
}

func TestUnknownAccountsCostThePhonePolicyAlike(t *testing.T) {
	t.Parallel()
	keys, _ := recovery.NewKeyring([]byte(strings.Repeat("k", 32)))
	a, b := keys.StandInPhone("nobody@example.com"), keys.StandInPhone("someone@example.com")
	if a == b || a != keys.StandInPhone("nobody@example.com") {
		t.Fatalf("stand-in numbers %q, %q: want distinct per account and stable", a, b)
	}
	if s := keys.StandInFromSet("nobody@example.com"); !slices.Contains(keys.StandInPhones(), s) || s != keys.StandInFromSet("nobody@example.com") {
		t.Fatalf("stand-in %q from the set: not in it, or not stable", s)
	}
	if !regexp.MustCompile(`^\+316\d{8}$`).MatchString(a) {
		t.Fatalf("stand-in %q is not a Dutch mobile number", a)
	}
	f := newFixture(t, nil)
	checked := &countingPolicy{PhonePolicy: plusOnly{}}
	f.deps.Phones = checked
	var err error
	if f.svc, err = recovery.New(f.cfg, f.deps); err != nil {
		t.Fatal(err)
	}
	f.start(t, alice)
	f.start(t, "nobody@example.com")
	if n := checked.calls.Load(); n != 2 {
		t.Fatalf("phone policy asked %d times for one known and one unknown account, want 2", n)
	}
}

type countingPolicy struct {
	recovery.PhonePolicy
	calls atomic.Int64
}

func (c *countingPolicy) Check(phone string) (string, error) {
	c.calls.Add(1)
	return c.PhonePolicy.Check(phone)
}

func TestRealmsDoNotShareFlowsOrTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	other := f.deps
	other.Keys = f.keys.InRealm("another upstream")
	otherSvc, err := recovery.New(f.cfg, other)
	if err != nil {
		t.Fatal(err)
	}

	s := f.start(t, alice)
	code := f.sent.lastCode(t)
	if _, err := otherSvc.Verify(ctx, s.FlowID, code, ip); !errors.Is(err, recovery.ErrInvalidCode) {
		t.Fatalf("right code in another realm = %v, want ErrInvalidCode", err)
	}
	v, err := f.svc.Verify(ctx, s.FlowID, code, ip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherSvc.BeginReset(ctx, v.Token, ip); !errors.Is(err, recovery.ErrInvalidToken) {
		t.Fatalf("token in another realm = %v, want ErrInvalidToken", err)
	}
	if _, err := f.svc.BeginReset(ctx, v.Token, ip); err != nil {
		t.Fatalf("token in its own realm: %v", err)
	}
}

// barrierStore holds every attempt until n callers have made one, so that
// all of them reach the store together: the widest window a race between
// checking a lock and counting a failure can have.
type barrierStore struct {
	*memory.Store
	arrived sync.WaitGroup
}

func (b *barrierStore) RunPlan(ctx context.Context, p *recovery.Plan) (recovery.Outcome, error) {
	if p.Op == recovery.OpAttempt {
		b.arrived.Done()
		b.arrived.Wait()
	}
	return b.Store.RunPlan(ctx, p)
}

// eventCounter counts events by name.
type eventCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *eventCounter) Observe(_ context.Context, e recovery.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[e.Name]++
}

// TestConcurrentGuessesAreComparedAtMostLockout releases 20 wrong codes for
// one account over 4 flows and 20 addresses at the same instant past the
// lock check: no more than lockout of them are ever compared.
func TestConcurrentGuessesAreComparedAtMostLockout(t *testing.T) {
	t.Parallel()
	const guesses, lockout = 20, 5
	f := newFixture(t, func(_ *recovery.Config, l *limiter.Config) {
		l.Lockout = limiter.Threshold{Failures: lockout, Window: time.Hour, Duration: 30 * time.Minute}
		l.StartAccount = limiter.Rate{Events: 100, Window: time.Hour}
	})
	ctx := context.Background()
	flows := make([]string, guesses/lockout)
	for i := range flows {
		flows[i] = f.start(t, alice).FlowID
	}
	bs := &barrierStore{Store: f.store}
	bs.arrived.Add(guesses)
	guard, err := limiter.New(f.limits, bs, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	events := &eventCounter{}
	deps := f.deps
	deps.Store, deps.Guard, deps.Observer = bs, guard, events
	svc, err := recovery.New(f.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	var locked atomic.Int64
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Go(func() {
			_, err := svc.Verify(ctx, flows[i%len(flows)], "000000", fmt.Sprintf("198.51.100.%d", i+1))
			switch {
			case errors.Is(err, recovery.ErrLocked):
				locked.Add(1)
			case !errors.Is(err, recovery.ErrInvalidCode):
				t.Errorf("guess %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := events.n[recovery.EventWrongCode]; n != lockout {
		t.Errorf("%d concurrent guesses: %d codes compared, want %d (the lockout)", guesses, n, lockout)
	}
	if locked.Load() != guesses-lockout+1 {
		t.Errorf("%d guesses met or set the lock, want %d", locked.Load(), guesses-lockout+1)
	}
}

// checkedBook is a phone book whose numbers were all checked when it
// loaded (recovery.PhonesChecked), as a file directory's are.
type checkedBook struct{ *phonebook }

func (checkedBook) PhonesChecked() bool { return true }

// TestStandInsFollowTheDirectory checks which stand-in an unknown account
// gets: from the keyring's checked set when the directory checked all its
// numbers ahead, so that neither kind of account parses at /start, and an
// account's own made-up number otherwise, parsed like a real one is when
// first seen.
func TestStandInsFollowTheDirectory(t *testing.T) {
	t.Parallel()
	for _, checkedAhead := range []bool{false, true} {
		f := newFixture(t, nil)
		seen := &recordingPolicy{PhonePolicy: plusOnly{}}
		f.deps.Phones = seen
		if checkedAhead {
			f.deps.Directory = checkedBook{f.dir}
		}
		var err error
		if f.svc, err = recovery.New(f.cfg, f.deps); err != nil {
			t.Fatal(err)
		}
		f.start(t, "nobody@example.com")
		want := f.keys.StandInPhone("nobody@example.com")
		if checkedAhead {
			want = f.keys.StandInFromSet("nobody@example.com")
		}
		if got := seen.last(); got != want {
			t.Errorf("checked ahead %v: the policy was asked for %q, want the stand-in %q", checkedAhead, got, want)
		}
	}
}

type recordingPolicy struct {
	recovery.PhonePolicy
	mu    sync.Mutex
	phone string
}

func (r *recordingPolicy) Check(phone string) (string, error) {
	r.mu.Lock()
	r.phone = phone
	r.mu.Unlock()
	return r.PhonePolicy.Check(phone)
}

func (r *recordingPolicy) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phone
}

// TestNotifyImposedLock: the owner of an account whose recovery support
// locked gets the lock notice, with the support text, within the SMS
// limits; an account the directory does not know, or whose number must
// not be texted, gets nothing; and nothing goes out when lock notices are
// off.
func TestNotifyImposedLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := recovery.Event{Account: alice, Reason: "imposed by support"}
	tests := []struct {
		name    string
		account string
		on      bool
		want    bool
	}{
		{"known account", alice, true, true},
		{"unknown account", "nobody@example.com", true, false},
		{"number that must not be texted", bob, true, false},
		{"lock notices off", alice, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(c *recovery.Config, _ *limiter.Config) { c.NotifyOnLock = tt.on })
			if got := f.svc.NotifyImposedLock(ctx, tt.account, ev); got != tt.want {
				t.Fatalf("NotifyImposedLock = %v, want %v", got, tt.want)
			}
			msgs := f.sent.all()
			if !tt.want {
				if len(msgs) != 0 {
					t.Fatalf("sent %+v, want nothing", msgs)
				}
				return
			}
			if len(msgs) != 1 || msgs[0].Kind != "lock_notice" || msgs[0].To != alicePhone ||
				!strings.Contains(msgs[0].Body, "support has locked") || !strings.Contains(msgs[0].Body, "Call +1 555 0100") {
				t.Fatalf("sent %+v, want one notice to %s that support locked its recovery, with the support text", msgs, alicePhone)
			}
		})
	}

	// The notice spends the phone's SMS limit like a code: once it is
	// spent, the notice is refused.
	f := newFixture(t, func(c *recovery.Config, l *limiter.Config) {
		c.NotifyOnLock = true
		l.StartPhone = limiter.Rate{Events: 1, Window: time.Hour}
	})
	f.start(t, alice)
	f.svc.NotifyImposedLock(ctx, alice, ev)
	if msgs := f.sent.all(); len(msgs) != 1 || msgs[0].Kind != "code" || f.sent.refused != 1 {
		t.Errorf("sent %+v with %d refused, want the code alone and the notice refused by start_phone", msgs, f.sent.refused)
	}
}
