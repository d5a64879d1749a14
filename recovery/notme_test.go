package recovery_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// mailbox records the e-mail notices a Mailer takes.
type mailbox struct {
	mu   sync.Mutex
	mail []recovery.Mail
	fail error
}

func (m *mailbox) Mail(_ context.Context, n recovery.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.mail = append(m.mail, n)
	return nil
}

func (m *mailbox) all() []recovery.Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recovery.Mail(nil), m.mail...)
}

// notMeFixture is a fixture whose resets send mail notices with not-me
// links, and whose disputes lock through the limiter.
type notMeFixture struct {
	*fixture
	mail   *mailbox
	events *eventCounter
	guard  *limiter.Guard
}

func newNotMeFixture(t *testing.T) *notMeFixture {
	t.Helper()
	f := newFixture(t, nil)
	guard, err := limiter.New(f.limits, f.store, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	n := &notMeFixture{fixture: f, mail: &mailbox{}, events: &eventCounter{}, guard: guard}
	f.dir.entries[alice] = recovery.Entry{Phone: alicePhone, Email: "alice.private@example.net"}
	cfg := f.cfg
	cfg.PublicURL, cfg.NotMeTTL, cfg.MailMailbox, cfg.MailAlternate = publicURL, 7*24*time.Hour, true, true
	deps := f.deps
	deps.Mailer, deps.Locker, deps.Observer, deps.Guard = n.mail, guard, n.events, guard
	if f.svc, err = recovery.New(cfg, deps); err != nil {
		t.Fatal(err)
	}
	return n
}

// reset runs a whole flow for account up to a reset the upstream took.
func (f *notMeFixture) reset(t *testing.T, account string) {
	t.Helper()
	ctx := context.Background()
	s := f.start(t, account)
	v, err := f.svc.Verify(ctx, s.FlowID, f.sent.lastCode(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.svc.BeginReset(ctx, v.Token, ip)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
}

// token returns the not-me token of the i-th mail notice.
func (f *notMeFixture) token(t *testing.T, i int) string {
	t.Helper()
	mail := f.mail.all()
	if len(mail) <= i {
		t.Fatalf("%d mail notices, want at least %d", len(mail), i+1)
	}
	prefix := publicURL + "/recovery/not-me?t="
	for _, line := range strings.Split(mail[i].Body, "\n") {
		if tok, ok := strings.CutPrefix(line, prefix); ok {
			if _, err := url.ParseQuery("t=" + tok); err != nil {
				t.Fatalf("link token %q is not URL-safe", tok)
			}
			return tok
		}
	}
	t.Fatalf("no not-me link in %q", mail[i].Body)
	return ""
}

func (f *notMeFixture) locked(t *testing.T, account string) bool {
	t.Helper()
	locks, err := f.guard.Locks(context.Background(), recovery.KindAccount)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locks {
		if l.Key == account && l.InForce(f.clock.Now()) {
			return true
		}
	}
	return false
}

func TestResetMailsMailboxAndAlternate(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	f.reset(t, alice)
	mail := f.mail.all()
	if len(mail) != 2 {
		t.Fatalf("mail notices %+v, want 2", mail)
	}
	if mail[0].Kind != recovery.MailMailbox || mail[0].To != alice || mail[0].Masked != "a*****@example.com" {
		t.Errorf("first notice %+v, want alice's mailbox", mail[0])
	}
	if mail[1].Kind != recovery.MailAlternate || mail[1].To != "alice.private@example.net" {
		t.Errorf("second notice %+v, want the alternate address", mail[1])
	}
	for i, m := range mail {
		if !strings.Contains(m.Subject, "Example Mail") || !strings.Contains(m.Body, "Call +1 555 0100") {
			t.Errorf("notice %d: subject %q body %q", i, m.Subject, m.Body)
		}
	}
	if f.token(t, 0) == f.token(t, 1) {
		t.Error("both notices carry the same link: each must be its own")
	}
	if n := f.events.n[recovery.EventMailNotice]; n != 2 {
		t.Errorf("mail_notice events %d, want 2", n)
	}
}

func TestResetNotMailedWhenUpstreamRefused(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
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
	if err := rs.Finish(ctx, false); err != nil {
		t.Fatal(err)
	}
	if mail := f.mail.all(); len(mail) != 0 {
		t.Fatalf("a failed reset mailed %+v", mail)
	}
}

func TestResetSucceedsWhenMailerFull(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	f.mail.fail = recovery.ErrQueueFull
	f.reset(t, alice) // fails the test on any error
	if n := f.events.n[recovery.EventMailFailed]; n != 2 {
		t.Errorf("mail_failed events %d, want 2", n)
	}
}

func TestNotMeLocksOnce(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	ctx := context.Background()
	f.reset(t, alice)
	tok := f.token(t, 0)

	// What a mail scanner does: read the link, many times. Nothing locks.
	for range 3 {
		n, err := f.svc.CheckNotMe(ctx, tok)
		if err != nil || n.Account != alice {
			t.Fatalf("CheckNotMe: %+v, %v", n, err)
		}
	}
	if f.locked(t, alice) {
		t.Fatal("reading the link locked the account")
	}

	d, err := f.svc.Dispute(ctx, tok, ip)
	if err != nil || d.Account != alice || !d.Lock.Permanent {
		t.Fatalf("Dispute: %+v, %v; want a lock until support lifts it", d, err)
	}
	if !f.locked(t, alice) {
		t.Fatal("the account is not locked after the dispute")
	}
	if n := f.events.n[recovery.EventResetDisputed]; n != 1 {
		t.Fatalf("reset_disputed events %d, want 1", n)
	}
	// A start for the account is now refused as locked.
	if _, err := f.svc.Start(ctx, recovery.StartRequest{Account: alice, ClientIP: "192.0.2.99", PublicURL: publicURL}); !errors.Is(err, recovery.ErrLocked) {
		t.Fatalf("Start after the dispute: %v, want ErrLocked", err)
	}

	// Support lifts the lock; the used link must not lock it again.
	if _, err := f.guard.Lift(ctx, recovery.KindAccount, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Dispute(ctx, tok, ip); !errors.Is(err, recovery.ErrLinkUsed) {
		t.Fatalf("second Dispute: %v, want ErrLinkUsed", err)
	}
	if _, err := f.svc.CheckNotMe(ctx, tok); !errors.Is(err, recovery.ErrLinkUsed) {
		t.Fatalf("CheckNotMe of a used link: %v, want ErrLinkUsed", err)
	}
	if f.locked(t, alice) {
		t.Fatal("a used link locked the account again")
	}
	if n := f.events.n[recovery.EventResetDisputed]; n != 1 {
		t.Fatalf("reset_disputed events %d after a reuse, want 1", n)
	}
}

func TestNotMeRefusesForgedAlteredExpired(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	ctx := context.Background()
	f.reset(t, alice)
	tok := f.token(t, 0)
	payload, sig, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	// The same nonce and expiry, the account changed to bob's.
	altered := append(raw[:24:24], bob...)
	otherKeys, _ := recovery.NewKeyring([]byte(strings.Repeat("x", 32)))
	for _, c := range []struct {
		name, token string
		want        error
	}{
		{"empty", "", recovery.ErrInvalidLink},
		{"no signature", payload, recovery.ErrInvalidLink},
		{"garbage", "!!!.???", recovery.ErrInvalidLink},
		{"altered account", base64.RawURLEncoding.EncodeToString(altered) + "." + sig, recovery.ErrInvalidLink},
		{"signature flipped", payload + "." + flip(sig), recovery.ErrInvalidLink},
		{"other secret", otherKeys.NotMeToken(alice, f.clock.Now().Add(time.Hour), make([]byte, 16)), recovery.ErrInvalidLink},
		{"too long", strings.Repeat("A", 5000) + "." + sig, recovery.ErrInvalidLink},
	} {
		if _, err := f.svc.Dispute(ctx, c.token, ip); !errors.Is(err, c.want) {
			t.Errorf("%s: Dispute = %v, want %v", c.name, err, c.want)
		}
		if _, err := f.svc.CheckNotMe(ctx, c.token); !errors.Is(err, c.want) {
			t.Errorf("%s: CheckNotMe = %v, want %v", c.name, err, c.want)
		}
	}
	if f.locked(t, alice) || f.locked(t, bob) {
		t.Fatal("a forged link locked an account")
	}

	// Seven days and a second later, the genuine link has expired.
	f.clock.Advance(7*24*time.Hour + time.Second)
	if _, err := f.svc.Dispute(ctx, tok, ip); !errors.Is(err, recovery.ErrLinkExpired) {
		t.Fatalf("expired: Dispute = %v, want ErrLinkExpired", err)
	}
	if f.locked(t, alice) {
		t.Fatal("an expired link locked the account")
	}
	if n := f.events.n[recovery.EventResetDisputed]; n != 0 {
		t.Fatalf("reset_disputed events %d, want 0", n)
	}
}

func TestNotMeSurvivesRotation(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	f.reset(t, alice)
	tok := f.token(t, 0)
	newer, err := recovery.NewKeyring([]byte(strings.Repeat("n", 32)), []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := newer.OpenNotMe(tok)
	if err != nil || n.Account != alice {
		t.Fatalf("a link signed before the rotation: %+v, %v", n, err)
	}
	old, _ := f.keys.OpenNotMe(tok)
	if n.Key != old.Key {
		t.Fatal("the link's key in the store changed with the rotation: it could be used once per secret")
	}
}

func TestNotMeConcurrentDisputesLockOnce(t *testing.T) {
	t.Parallel()
	f := newNotMeFixture(t)
	ctx := context.Background()
	f.reset(t, alice)
	tok := f.token(t, 0)
	const callers = 20
	var won, used atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			_, err := f.svc.Dispute(ctx, tok, ip)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, recovery.ErrLinkUsed):
				used.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || used.Load() != callers-1 {
		t.Fatalf("%d disputes took, %d found the link used; want 1 and %d", won.Load(), used.Load(), callers-1)
	}
	if n := f.events.n[recovery.EventResetDisputed]; n != 1 {
		t.Fatalf("reset_disputed events %d, want 1", n)
	}
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// TestNotMeLongestAccount: the token of the longest account, in 4-byte
// characters, opens.
func TestNotMeLongestAccount(t *testing.T) {
	t.Parallel()
	keys, err := recovery.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	account := strings.Repeat("\U0001F600", recovery.MaxAccountLen)
	tok := keys.NotMeToken(account, time.Now().Add(time.Hour), make([]byte, 16))
	n, err := keys.OpenNotMe(tok)
	if err != nil || n.Account != account {
		t.Fatalf("OpenNotMe of a %d-character token: %v", len(tok), err)
	}
}
