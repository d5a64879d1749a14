package mail_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	mailer "github.com/caddy-sms-recovery/caddy-sms-recovery/mail"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/mail/mailtest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

var (
	from = &mail.Address{Name: "Exämple Mail", Address: "noreply@example.com"}
	now  = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
)

func notice(kind, to string) recovery.Mail {
	return recovery.Mail{
		Kind: kind, To: to, Masked: recovery.MaskAccount(to), Reference: "ref1", Lang: "de",
		Subject: "Ihr Exämple Mail Passwort wurde geändert",
		Body:    "Grüße.\nDer Link: https://mail.example.com/recovery/not-me?t=abc.def\n",
	}
}

// outcomes collects what the queue reports.
type outcomes struct {
	ch    chan mailer.Outcome
	mu    sync.Mutex
	tries []mailer.Try
}

func newQueue(t *testing.T, mutate func(*mailer.QueueConfig)) (*mailer.Queue, *outcomes) {
	t.Helper()
	o := &outcomes{ch: make(chan mailer.Outcome, 16)}
	cfg := mailer.QueueConfig{
		From:    from,
		Observe: func(out mailer.Outcome) { o.ch <- out },
		ObserveTry: func(tr mailer.Try) {
			o.mu.Lock()
			o.tries = append(o.tries, tr)
			o.mu.Unlock()
		},
		Clock: clock.NewManual(now),
		// The backoff is asked for, not waited out.
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		Rand:  rand.NewChaCha8([32]byte{7}),
	}
	mutate(&cfg)
	q, err := mailer.NewQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q, o
}

func (o *outcomes) next(t *testing.T) mailer.Outcome {
	t.Helper()
	select {
	case out := <-o.ch:
		return out
	case <-time.After(30 * time.Second): // a deadlock guard, never the expected path
		t.Fatal("no outcome")
	}
	return mailer.Outcome{}
}

func received(t *testing.T, r *mailtest.Receiver) mailtest.Received {
	t.Helper()
	select {
	case m := <-r.Messages:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver got nothing")
	}
	return mailtest.Received{}
}

// checkMessage parses a delivered message and checks its headers and body.
func checkMessage(t *testing.T, data []byte, to string) {
	t.Helper()
	if !bytes.Contains(data, []byte("\r\n\r\n")) || bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("the message's lines do not all end in CRLF:\n%s", data)
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading the message: %v\n%s", err, data)
	}
	h := m.Header
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date %q: %v, %v", h.Get("Date"), d, err)
	}
	if a, err := mail.ParseAddress(h.Get("From")); err != nil || a.Name != from.Name || a.Address != from.Address {
		t.Errorf("From %q: %v, %v", h.Get("From"), a, err)
	}
	if a, err := mail.ParseAddress(h.Get("To")); err != nil || a.Address != to {
		t.Errorf("To %q: %v, %v", h.Get("To"), a, err)
	}
	raw := h.Get("Subject")
	if !strings.HasPrefix(raw, "=?utf-8?") {
		t.Errorf("Subject %q is not RFC 2047 encoded", raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil || subject != "Ihr Exämple Mail Passwort wurde geändert" {
		t.Errorf("Subject decodes to %q, %v", subject, err)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID %q", id)
	}
	if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if h.Get("Auto-Submitted") != "auto-generated" || h.Get("MIME-Version") != "1.0" {
		t.Errorf("Auto-Submitted %q, MIME-Version %q", h.Get("Auto-Submitted"), h.Get("MIME-Version"))
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	// net/mail leaves the transfer encoding to the reader.
	dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	want := "Grüße.\r\nDer Link: https://mail.example.com/recovery/not-me?t=abc.def\r\n"
	if string(dec) != want {
		t.Errorf("body %q, want %q", dec, want)
	}
}

func TestDeliversBySMTP(t *testing.T) {
	t.Parallel()
	r := mailtest.Start(t, false)
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: r.Addr}
	})
	if err := q.Mail(context.Background(), notice(recovery.MailAlternate, "alice.private@example.net")); err != nil {
		t.Fatal(err)
	}
	got := received(t, r)
	if got.From != from.Address || len(got.To) != 1 || got.To[0] != "alice.private@example.net" {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	checkMessage(t, got.Data, "alice.private@example.net")
	out := o.next(t)
	if out.Result != mailer.ResultSent || out.Tries != 1 || out.To != "a*****@example.net" || out.Kind != recovery.MailAlternate {
		t.Errorf("outcome %+v", out)
	}
}

func TestDeliversByLMTP(t *testing.T) {
	t.Parallel()
	r := mailtest.Start(t, true)
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.LMTP, Address: r.Addr}
	})
	if err := q.Mail(context.Background(), notice(recovery.MailMailbox, "alice@example.com")); err != nil {
		t.Fatal(err)
	}
	got := received(t, r)
	if len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Errorf("envelope to %q", got.To)
	}
	checkMessage(t, got.Data, "alice@example.com")
	if out := o.next(t); out.Result != mailer.ResultSent {
		t.Errorf("outcome %+v", out)
	}
}

func TestAlternateGoesToItsRelay(t *testing.T) {
	t.Parallel()
	box, relay := mailtest.Start(t, true), mailtest.Start(t, false)
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.LMTP, Address: box.Addr}
		c.Alternate = &mailer.Server{Protocol: mailer.SMTP, Address: relay.Addr}
	})
	ctx := context.Background()
	q.Mail(ctx, notice(recovery.MailMailbox, "alice@example.com"))
	q.Mail(ctx, notice(recovery.MailAlternate, "alice.private@example.net"))
	if got := received(t, box); got.To[0] != "alice@example.com" {
		t.Errorf("mailbox server got %q", got.To)
	}
	if got := received(t, relay); got.To[0] != "alice.private@example.net" {
		t.Errorf("relay got %q", got.To)
	}
	o.next(t)
	o.next(t)
}

func TestServerDownIsRetriedThenExhausted(t *testing.T) {
	t.Parallel()
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: freeport.ClosedAddr(t), Timeout: 5 * time.Second}
		c.Tries = 3
	})
	if err := q.Mail(context.Background(), notice(recovery.MailMailbox, "alice@example.com")); err != nil {
		t.Fatal(err)
	}
	out := o.next(t)
	if out.Result != mailer.ResultExhausted || out.Tries != 3 || out.Err == nil {
		t.Fatalf("outcome %+v, want retries_exhausted after 3 tries", out)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.tries) != 3 {
		t.Fatalf("failed tries reported %d, want 3", len(o.tries))
	}
	for _, tr := range o.tries {
		if strings.Contains(tr.To, "alice@") || strings.Contains(tr.Err.Error(), "alice@") {
			t.Errorf("a try names the address in clear: %+v", tr)
		}
	}
}

func TestTemporaryRefusalIsRetriedPermanentIsNot(t *testing.T) {
	t.Parallel()
	r := mailtest.Start(t, false)
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: r.Addr}
	})
	ctx := context.Background()
	r.Refuse(&smtp.SMTPError{Code: 451, Message: "try later"})
	q.Mail(ctx, notice(recovery.MailMailbox, "alice@example.com"))
	received(t, r)
	if out := o.next(t); out.Result != mailer.ResultSent || out.Tries != 2 {
		t.Fatalf("after a 451: %+v, want sent at the second try", out)
	}
	r.Refuse(&smtp.SMTPError{Code: 550, Message: "<Bob@Example.com>: no such user"})
	q.Mail(ctx, notice(recovery.MailMailbox, "bob@example.com"))
	out := o.next(t)
	if out.Result != mailer.ResultRejected || out.Tries != 1 || !mailer.Permanent(out.Err) {
		t.Fatalf("after a 550: %+v, want rejected at once", out)
	}
	if msg := out.Err.Error(); strings.Contains(strings.ToLower(msg), "bob@") || !strings.Contains(msg, "b*****@example.com") {
		t.Errorf("the outcome's error %q names the address in clear, or not masked", msg)
	}
}

func TestRequiredStartTLSRefusesPlainServer(t *testing.T) {
	t.Parallel()
	r := mailtest.Start(t, false) // offers no STARTTLS
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: r.Addr, StartTLS: mailer.StartTLSRequired}
		c.Tries = 1
	})
	q.Mail(context.Background(), notice(recovery.MailMailbox, "alice@example.com"))
	if out := o.next(t); out.Result != mailer.ResultExhausted {
		t.Fatalf("outcome %+v, want the plain server refused", out)
	}
	select {
	case m := <-r.Messages:
		t.Fatalf("a message went in the clear: %s", m.Data)
	default:
	}
}

func TestFullQueueRefusesAtOnce(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: freeport.ClosedAddr(t)}
		c.Size, c.Workers, c.Tries = 1, 1, 2
		c.Sleep = func(ctx context.Context, _ time.Duration) error {
			select {
			case <-block:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	ctx := context.Background()
	q.Mail(ctx, notice(recovery.MailMailbox, "a@example.com")) // taken by the worker, which waits to retry
	// The worker may not have taken the first yet: fill the queue until it refuses.
	var err error
	for range 3 {
		if err = q.Mail(ctx, notice(recovery.MailMailbox, "b@example.com")); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("a full queue took every notice")
	}
	if out := o.next(t); out.Result != mailer.ResultQueueFull {
		t.Fatalf("outcome %+v, want queue_full", out)
	}
	close(block)
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestStartTLSWhereOffered(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	r := mailtest.StartTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: r.Addr, TLS: &tls.Config{RootCAs: pool}}
	})
	q.Mail(context.Background(), notice(recovery.MailAlternate, "alice.private@example.net"))
	if got := received(t, r); !got.TLS {
		t.Fatal("the server offered STARTTLS, and the notice went in the clear")
	}
	if out := o.next(t); out.Result != mailer.ResultSent {
		t.Fatalf("outcome %+v", out)
	}
}

// TestStartTLSUntrustedCertificateFails: opportunistic STARTTLS checks the
// certificate; one it cannot trust is a failed try, never the clear.
func TestStartTLSUntrustedCertificateFails(t *testing.T) {
	t.Parallel()
	cert, _ := selfSigned(t)
	r := mailtest.StartTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.SMTP, Address: r.Addr}
		c.Tries = 2
	})
	q.Mail(context.Background(), notice(recovery.MailAlternate, "alice.private@example.net"))
	if out := o.next(t); out.Result != mailer.ResultExhausted || out.Tries != 2 {
		t.Fatalf("outcome %+v, want retries_exhausted", out)
	}
	select {
	case m := <-r.Messages:
		t.Fatalf("a notice was taken over an untrusted connection: TLS %v", m.TLS)
	default:
	}
}
