package module

import (
	"bytes"
	"context"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/mail/mailtest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// notifyEnv is a page gateway whose resets send e-mail notices: alice's
// into her mailbox by LMTP, and to her alternate address by SMTP.
func notifyEnv(t *testing.T, mailbox, relay string, more ...func(*Handler)) *pageEnv {
	t.Helper()
	dirFile := filepath.Join(t.TempDir(), "directory.json")
	entries := `{"alice@example.com": {"phone": "+31612345678", "email": "alice.private@example.net"}}`
	if err := os.WriteFile(dirFile, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	return newPageEnv(t, func(h *Handler) {
		h.SiteName = "Notify Mail " + t.Name() // a site of its own, for the metrics
		h.DirectoryRaw = fileDirectory(dirFile)
		h.Notify = &Notify{
			Mail:  &MailServer{Protocol: "lmtp", Address: mailbox},
			Relay: &MailServer{Protocol: "smtp", Address: relay, Timeout: caddy.Duration(5 * time.Second)},
			From:  "Notify Mail <noreply@example.com>",
			Tries: 3,
		}
		// The waits between tries are asked for, not waited out.
		h.mailSleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
		for _, f := range more {
			f(h)
		}
	})
}

var notMeLink = regexp.MustCompile(`http://mail\.example\.com/recovery/not-me\?t=([A-Za-z0-9_.-]+)`)

// readNotice reads a delivered notice: its headers, and the token of its
// not-me link.
func readNotice(t *testing.T, got mailtest.Received, to string) (*mail.Message, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.To) != 1 || got.To[0] != to || got.From != "noreply@example.com" {
		t.Errorf("envelope from %q to %q, want %s", got.From, got.To, to)
	}
	if a, err := mail.ParseAddress(m.Header.Get("To")); err != nil || a.Address != to {
		t.Errorf("To %q", m.Header.Get("To"))
	}
	if a, err := mail.ParseAddress(m.Header.Get("From")); err != nil || a.Name != "Notify Mail" {
		t.Errorf("From %q", m.Header.Get("From"))
	}
	if _, err := m.Header.Date(); err != nil || m.Header.Get("Message-ID") == "" {
		t.Errorf("Date %q, Message-ID %q", m.Header.Get("Date"), m.Header.Get("Message-ID"))
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "alice@example.com") || !strings.Contains(string(body), "Call +1 555 0100") {
		t.Errorf("body lacks the account or the support text:\n%s", body)
	}
	link := notMeLink.FindSubmatch(body)
	if link == nil {
		t.Fatalf("no not-me link in:\n%s", body)
	}
	return m, string(link[1])
}

func waitMail(t *testing.T, r *mailtest.Receiver) mailtest.Received {
	t.Helper()
	select {
	case m := <-r.Messages:
		return m
	case <-time.After(awaitTimeout): // a deadlock guard only
		t.Fatal("no notice arrived")
	}
	return mailtest.Received{}
}

// counter reads a counter of the gateway's site.
func (e *pageEnv) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := processMetrics().register(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			if have["site"] != e.h.SiteName {
				continue
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func (e *pageEnv) accountLocked(t *testing.T, account string) bool {
	t.Helper()
	locks, err := e.h.guard.Locks(context.Background(), recovery.KindAccount)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locks {
		if l.Key == account {
			return true
		}
	}
	return false
}

func TestNoticesAndNotMeLink(t *testing.T) {
	t.Parallel()
	box, relay := mailtest.Start(t, true), mailtest.Start(t, false)
	e := notifyEnv(t, box.Addr, relay.Addr)
	b := e.browser()
	e.walkToDone(b)

	_, boxToken := readNotice(t, waitMail(t, box), pageTestAccount)
	_, altToken := readNotice(t, waitMail(t, relay), "alice.private@example.net")
	if boxToken == altToken {
		t.Fatal("both notices carry one link")
	}

	// A mail scanner follows the link, again and again: nothing locks.
	scanner := e.browser()
	for range 3 {
		p := scanner.get(e.url("/not-me?t=" + url.QueryEscape(boxToken)))
		p.want(t, http.StatusOK, "a*****@example.com", "Lock password recovery")
		if strings.Contains(p.body, pageTestAccount) {
			t.Fatal("the not-me page shows the account in clear")
		}
	}
	if e.accountLocked(t, pageTestAccount) {
		t.Fatal("a GET of the link locked the account")
	}

	// A POST without the page's CSRF token, as a forged form would send.
	owner := e.browser()
	p := owner.get(e.url("/not-me?t=" + url.QueryEscape(boxToken)))
	forged := owner.post(e.url("/not-me"), url.Values{"t": {boxToken}, "csrf": {"forged"}})
	forged.want(t, http.StatusForbidden)
	if e.accountLocked(t, pageTestAccount) {
		t.Fatal("a POST without the CSRF token locked the account")
	}

	done := owner.post(e.url("/not-me"), url.Values{"t": {p.field("t")}, "csrf": {p.field("csrf")}})
	done.want(t, http.StatusOK, "Password recovery is locked", "Call +1 555 0100")
	if !e.accountLocked(t, pageTestAccount) {
		t.Fatal("the account is not locked after the owner confirmed")
	}
	if n := e.counter(t, "caddy_sms_recovery_reset_disputed_total", nil); n != 1 {
		t.Errorf("reset_disputed_total = %v, want 1", n)
	}
	var line bool
	for _, l := range e.logs.FilterField(zap.String("event", recovery.EventResetDisputed)).All() {
		line = true
		for _, f := range l.Context {
			if f.Key == "account" || strings.Contains(f.String, pageTestAccount) {
				t.Errorf("the log line names the account in clear: %v", l.Context)
			}
		}
	}
	if !line {
		t.Error("no reset_disputed log line")
	}
	if len(e.events.named(eventNames[recovery.EventResetDisputed])) == 0 {
		t.Error("no sms_recovery_reset_disputed Caddy event")
	}

	// The same link again: used, and nothing more happens.
	again := owner.post(e.url("/not-me"), url.Values{"t": {p.field("t")}, "csrf": {p.field("csrf")}})
	again.want(t, http.StatusGone, "used already")
	scanner.get(e.url("/not-me?t="+url.QueryEscape(boxToken))).want(t, http.StatusGone)
	if n := e.counter(t, "caddy_sms_recovery_reset_disputed_total", nil); n != 1 {
		t.Errorf("reset_disputed_total = %v after a reuse, want 1", n)
	}

	// An altered token: refused, and bob stays unlocked.
	tampered := strings.Replace(altToken, altToken[:4], "AAAA", 1)
	owner.get(e.url("/not-me?t="+url.QueryEscape(tampered))).want(t, http.StatusBadRequest, "does not work")
	owner.post(e.url("/not-me"), url.Values{"t": {tampered}, "csrf": {p.field("csrf")}}).want(t, http.StatusBadRequest)
	owner.get(e.url("/not-me")).want(t, http.StatusBadRequest)
}

func TestResetSucceedsWhileMailServerDown(t *testing.T) {
	t.Parallel()
	down := freeport.ClosedAddr(t)
	box := mailtest.Start(t, true)
	e := notifyEnv(t, box.Addr, down)
	e.walkToDone(e.browser()) // the reset answers at once, whatever the mail server does
	waitMail(t, box)          // the mailbox's notice still arrives
	e.events.await(t, "the alternate notice given up", func() bool {
		return len(e.events.named("sms_recovery_mail_retries_exhausted")) > 0
	})
	if n := e.counter(t, "caddy_sms_recovery_mail_total", map[string]string{"kind": "alternate", "result": "retries_exhausted"}); n != 1 {
		t.Errorf("mail_total{alternate,retries_exhausted} = %v, want 1", n)
	}
	if n := e.counter(t, "caddy_sms_recovery_mail_tries_failed_total", map[string]string{"kind": "alternate"}); n != 3 {
		t.Errorf("mail_tries_failed_total{alternate} = %v, want 3", n)
	}
	for _, l := range e.logs.All() {
		for _, f := range l.Context {
			if strings.Contains(f.String, "alice.private@") || (f.Interface != nil && strings.Contains(errString(f.Interface), "alice.private@")) {
				t.Errorf("a log line names the alternate address in clear: %s %v", l.Message, l.Context)
			}
		}
	}
}

func errString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return ""
}

func TestNotifyValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		n    *Notify
		want string
	}{
		{"no mail", &Notify{From: "a@example.com"}, "notify: mail: required"},
		{"bad from", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25"}, From: "nobody"}, "notify: from"},
		{"lmtp without relay", &Notify{Mail: &MailServer{Protocol: "lmtp", Address: "unix//run/dovecot/lmtp"}, From: "a@example.com"}, "notify: relay: required"},
		{"lmtp relay", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25"}, Relay: &MailServer{Protocol: "lmtp", Address: "127.0.0.1:24"}, From: "a@example.com"}, "must be smtp"},
		{"bad address", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "localhost"}, From: "a@example.com"}, "neither host:port"},
		{"relative socket", &Notify{Mail: &MailServer{Protocol: "lmtp", Address: "unix/run/lmtp"}, From: "a@example.com", Alternate: new(bool)}, "absolute path"},
		{"bad starttls", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25", StartTLS: "yes"}, From: "a@example.com"}, "starttls"},
		{"short link", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25"}, From: "a@example.com", LinkTTL: caddy.Duration(time.Minute)}, "link_ttl"},
		{"many tries", &Notify{Mail: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25"}, From: "a@example.com", Tries: 50}, "tries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.n.validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate: %v, want %q", err, c.want)
			}
		})
	}
	ok := &Notify{Mail: &MailServer{Protocol: "lmtp", Address: "unix//run/dovecot/lmtp"},
		Relay: &MailServer{Protocol: "smtp", Address: "127.0.0.1:25", StartTLS: "required"}, From: `"Example Mail" <noreply@example.com>`}
	ok.fillDefaults()
	if err := ok.validate(); err != nil {
		t.Fatalf("a good notify: %v", err)
	}
}

// TestNotMeOnceAcrossInstances: two gateways share a Redis storage and a
// secret, as instances behind one load balancer do; the owner's link is
// posted to both at once, many times. One post locks, every other finds
// the link used, and one dispute is counted.
func TestNotMeOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	storage := redisTestStorage(t)
	box, relay := mailtest.Start(t, true), mailtest.Start(t, false)
	shared := func(h *Handler) {
		h.StorageRaw = storage
		h.Secrets = []string{opsSecret}
		h.SiteName = "Notify Mail shared"
	}
	a := notifyEnv(t, box.Addr, relay.Addr, shared)
	b := notifyEnv(t, box.Addr, relay.Addr, shared)
	a.walkToDone(a.browser())
	_, token := readNotice(t, waitMail(t, box), pageTestAccount)
	waitMail(t, relay)
	before := a.counter(t, "caddy_sms_recovery_reset_disputed_total", nil)

	const posts = 8
	type ready struct {
		br   *browser
		env  *pageEnv
		form url.Values
	}
	var forms []ready
	for i := range posts {
		env := a
		if i%2 == 1 {
			env = b
		}
		br := env.browser()
		p := br.get(env.url("/not-me?t=" + url.QueryEscape(token)))
		p.want(t, http.StatusOK)
		forms = append(forms, ready{br, env, url.Values{"t": {p.field("t")}, "csrf": {p.field("csrf")}}})
	}
	statuses := make([]int, posts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, f := range forms {
		wg.Go(func() {
			<-start
			statuses[i] = f.br.post(f.env.url("/not-me"), f.form).StatusCode
		})
	}
	close(start)
	wg.Wait()
	locked, used := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			locked++
		case http.StatusGone:
			used++
		default:
			t.Errorf("a post answered %d", s)
		}
	}
	if locked != 1 || used != posts-1 {
		t.Fatalf("%d posts locked and %d found the link used; want 1 and %d (statuses %v)", locked, used, posts-1, statuses)
	}
	if !a.accountLocked(t, pageTestAccount) || !b.accountLocked(t, pageTestAccount) {
		t.Fatal("the account is not locked on both instances")
	}
	if n := a.counter(t, "caddy_sms_recovery_reset_disputed_total", nil) - before; n != 1 {
		t.Fatalf("disputes counted %v, want 1", n)
	}
}
