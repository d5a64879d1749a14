// Package mailtest runs a real SMTP or LMTP receiver (go-smtp's server) for
// tests, on a free loopback port or a Unix socket, and hands over every
// message it takes.
package mailtest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// Received is one message a Receiver took.
type Received struct {
	From string
	To   []string
	Data []byte
	TLS  bool // the message came over a connection upgraded with STARTTLS
}

// Receiver is a running SMTP or LMTP server.
type Receiver struct {
	// Addr is the address to deliver to: host:port, or unix/<path>.
	Addr string
	// Messages has each message taken, in order.
	Messages chan Received

	mu     sync.Mutex
	refuse []error // answers to the DATA of the next messages, in order
}

// Refuse makes the receiver answer the DATA of the next messages with
// errs, one each, in order: an *smtp.SMTPError with a 4xx code is a
// failure worth a retry, a 5xx one a refusal for good.
func (r *Receiver) Refuse(errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = append(r.refuse, errs...)
}

// Start runs a receiver until the test ends: LMTP over a Unix socket when
// lmtp, SMTP on a loopback port otherwise.
func Start(tb testing.TB, lmtp bool) *Receiver {
	tb.Helper()
	return start(tb, lmtp, nil)
}

// StartTLS runs an SMTP receiver on a loopback port that offers STARTTLS
// with cfg.
func StartTLS(tb testing.TB, cfg *tls.Config) *Receiver {
	tb.Helper()
	return start(tb, false, cfg)
}

func start(tb testing.TB, lmtp bool, cfg *tls.Config) *Receiver {
	r := &Receiver{Messages: make(chan Received, 16)}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{r: r, conn: c}, nil
	}))
	s.TLSConfig = cfg
	s.Domain = "mx.test"
	s.AllowInsecureAuth = true
	s.LMTP = lmtp
	var (
		l   net.Listener
		err error
	)
	if lmtp {
		path := filepath.Join(tb.TempDir(), "lmtp")
		l, err = net.Listen("unix", path)
		r.Addr = "unix/" + path
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			r.Addr = l.Addr().String()
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(l)
	tb.Cleanup(func() { s.Close() })
	return r
}

type session struct {
	r    *Receiver
	conn *smtp.Conn
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	var refuse error
	if len(s.r.refuse) > 0 {
		refuse, s.r.refuse = s.r.refuse[0], s.r.refuse[1:]
	}
	s.r.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	select {
	case s.r.Messages <- Received{From: s.from, To: s.to, Data: b, TLS: s.isTLS()}:
		return nil
	default:
		return errors.New("test receiver full")
	}
}

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}
