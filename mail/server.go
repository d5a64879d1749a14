package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Protocols of a Server.
const (
	SMTP = "smtp"
	LMTP = "lmtp"
)

// STARTTLS modes of an SMTP Server.
const (
	// StartTLSOpportunistic upgrades the connection where the server
	// offers STARTTLS, checking its certificate, and goes on in the clear
	// where it does not.
	StartTLSOpportunistic = "opportunistic"
	// StartTLSRequired refuses a server that does not offer STARTTLS.
	StartTLSRequired = "required"
	// StartTLSOff never asks for it.
	StartTLSOff = "off"
)

// Server is a mail server notices are handed to.
type Server struct {
	// Protocol is SMTP or LMTP.
	Protocol string
	// Address is host:port, or unix/<path> (unix//run/dovecot/lmtp) for a
	// Unix socket.
	Address string
	// StartTLS is the STARTTLS mode of an SMTP server; default
	// opportunistic. LMTP, local by nature, never asks for it.
	StartTLS string
	// TLS is the configuration of STARTTLS: its ServerName defaults to the
	// host of Address, and its roots to the system's.
	TLS *tls.Config
	// Timeout bounds one delivery, from the dial to the answer to the
	// message. Default: 30s.
	Timeout time.Duration
}

// ErrNoStartTLS is an SMTP server that does not offer STARTTLS, which
// StartTLSRequired refuses.
var ErrNoStartTLS = errors.New("the server does not offer STARTTLS")

// CheckAddress says what is wrong with the address of a server, if anything.
func CheckAddress(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix/"); ok {
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("%q: a Unix socket is unix/<absolute path>, e.g. unix//run/dovecot/lmtp", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q is neither host:port nor unix/<path>", addr)
	}
	return nil
}

func (s *Server) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	if path, ok := strings.CutPrefix(s.Address, "unix/"); ok {
		return d.DialContext(ctx, "unix", path)
	}
	return d.DialContext(ctx, "tcp", s.Address)
}

// client connects to the server and says hello, upgrading an SMTP
// connection with STARTTLS as the mode says.
func (s *Server) client(ctx context.Context, deadline time.Time) (*smtp.Client, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline)
	if s.Protocol == LMTP {
		return smtp.NewClientLMTP(conn), nil
	}
	if s.StartTLS == StartTLSOff {
		return smtp.NewClient(conn), nil
	}
	c := smtp.NewClient(conn)
	offered, _ := c.Extension("STARTTLS")
	if !offered {
		if s.StartTLS == StartTLSRequired {
			c.Close()
			return nil, ErrNoStartTLS
		}
		return c, nil
	}
	// go-smtp upgrades only a client that has not said hello yet.
	c.Close()
	if conn, err = s.dial(ctx); err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline)
	cfg := &tls.Config{}
	if s.TLS != nil {
		cfg = s.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(s.Address)
	}
	return smtp.NewClientStartTLS(conn, cfg)
}

// Deliver hands one message from from to to: one transaction, in which
// an LMTP server answers for the mailbox itself.
func (s *Server) Deliver(ctx context.Context, from, to string, msg []byte) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := s.client(ctx, deadline)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if s.Protocol == LMTP {
		answers, err := w.CloseWithLMTPResponse()
		if err != nil {
			return err
		}
		if _, ok := answers[to]; !ok {
			return fmt.Errorf("the LMTP server gave no answer for the recipient")
		}
	} else if err := w.Close(); err != nil {
		return err
	}
	// The message is taken: a failing QUIT must not make it go twice.
	_ = c.Quit()
	return nil
}

// Permanent reports whether err is the server refusing the message for
// good (a 5xx answer): another try would be refused the same.
func Permanent(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code >= 500
	}
	return false
}
