package module

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	mailer "github.com/caddy-sms-recovery/caddy-sms-recovery/mail"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Notify sends e-mail notices after a successful reset (NIST SP 800-63B-4
// §4.2.3), besides the SMS notice: into the account's own mailbox, and to
// the alternate address the directory knows for it. Each carries a
// single-use "this wasn't me" link, <public_url><path_prefix>/not-me?t=…,
// whose page locks the account's recovery until support lifts it.
type Notify struct {
	// Mail is the mail server that delivers into the accounts' mailboxes:
	// LMTP straight into the mail store (Dovecot's lmtp service, say), or
	// SMTP to the server that accepts mail for the accounts' domains.
	// Required.
	Mail *MailServer `json:"mail,omitempty"`

	// Relay is the SMTP server that takes the notices to alternate
	// addresses, which are elsewhere on the Internet. Default: Mail, when
	// it is SMTP; with an LMTP Mail, required unless Alternate is off.
	Relay *MailServer `json:"relay,omitempty"`

	// From is the From of the notices and their envelope sender, an
	// RFC 5322 address such as "Example Mail <noreply@example.com>".
	// Required.
	From string `json:"from,omitempty"`

	// Mailbox sends a notice into the account's own mailbox, when the
	// account is an e-mail address. Default: true.
	Mailbox *bool `json:"mailbox,omitempty"`

	// Alternate sends a notice to the alternate e-mail address the
	// directory has for the account, if any. Default: true.
	Alternate *bool `json:"alternate,omitempty"`

	// LinkTTL is how long the not-me link works: long enough for a person
	// to read the notice after some days away. At least 1h, at most 30d.
	// Default: 7d.
	LinkTTL caddy.Duration `json:"link_ttl,omitempty"`

	// Tries is how often a notice is tried at a failing server before it
	// is given up and counted in
	// caddy_sms_recovery_mail_total{result="retries_exhausted"}; the waits
	// between tries double from 10s up to 5m. 1 to 20. Default: 5.
	Tries int `json:"tries,omitempty"`

	// Queue is how many notices may wait for delivery; more are dropped
	// and counted. Default: 100.
	Queue int `json:"queue,omitempty"`
}

// MailServer is a mail server notices are handed to.
type MailServer struct {
	// Protocol is smtp or lmtp.
	Protocol string `json:"protocol"`
	// Address is host:port, or unix/<path> for a Unix socket, such as
	// unix//run/dovecot/lmtp.
	Address string `json:"address"`
	// StartTLS, for SMTP: opportunistic upgrades the connection where the
	// server offers STARTTLS and checks its certificate; required refuses
	// a server that does not offer it; off never asks. Default:
	// opportunistic.
	StartTLS string `json:"starttls,omitempty"`
	// Timeout bounds one delivery. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

const (
	defaultLinkTTL    = 7 * 24 * time.Hour
	leastLinkTTL      = time.Hour
	mostLinkTTL       = 30 * 24 * time.Hour
	defaultMailTries  = 5
	defaultMailQueue  = 100
	mailCloseDeadline = 10 * time.Second
)

func (n *Notify) fillDefaults() {
	on := true
	if n.Mailbox == nil {
		n.Mailbox = &on
	}
	if n.Alternate == nil {
		n.Alternate = &on
	}
	if n.LinkTTL == 0 {
		n.LinkTTL = caddy.Duration(defaultLinkTTL)
	}
	if n.Tries == 0 {
		n.Tries = defaultMailTries
	}
	if n.Queue == 0 {
		n.Queue = defaultMailQueue
	}
}

// validate checks n; every message names the directive.
func (n *Notify) validate() error {
	if n == nil {
		return nil
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(n.Mail != nil, "notify: mail: required (mail smtp <host:port> or mail lmtp unix/<path>)")
	errs = append(errs, n.Mail.validate("notify: mail"), n.Relay.validate("notify: relay"))
	if n.Relay != nil {
		check(n.Relay.Protocol == mailer.SMTP, "notify: relay: %q must be smtp: LMTP delivers only into local mailboxes", n.Relay.Protocol)
	}
	alternate := n.Alternate == nil || *n.Alternate
	check(!alternate || n.Relay != nil || n.Mail == nil || n.Mail.Protocol != mailer.LMTP,
		"notify: relay: required with an lmtp mail server, which cannot deliver to alternate addresses elsewhere: name an SMTP relay (relay smtp <host:port>) or turn them off (alternate off)")
	if a, err := mail.ParseAddress(n.From); err != nil {
		check(false, "notify: from: %q is not an e-mail address such as \"Example Mail <noreply@example.com>\"", n.From)
	} else {
		check(a.Address != "", "notify: from: %q has no address", n.From)
	}
	if n.LinkTTL != 0 {
		d := time.Duration(n.LinkTTL)
		check(d >= leastLinkTTL && d <= mostLinkTTL, "notify: link_ttl: %s is outside 1h..30d", d)
	}
	check(n.Tries >= 0 && n.Tries <= 20, "notify: tries: %d is outside 1..20", n.Tries)
	check(n.Queue >= 0, "notify: queue: must be positive")
	return errors.Join(errs...)
}

func (s *MailServer) validate(what string) error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.Protocol != mailer.SMTP && s.Protocol != mailer.LMTP {
		errs = append(errs, fmt.Errorf("%s: protocol %q is neither smtp nor lmtp", what, s.Protocol))
	}
	if err := mailer.CheckAddress(s.Address); err != nil {
		errs = append(errs, fmt.Errorf("%s: address %w", what, err))
	}
	switch s.StartTLS {
	case "", mailer.StartTLSOpportunistic, mailer.StartTLSRequired, mailer.StartTLSOff:
	default:
		errs = append(errs, fmt.Errorf("%s: starttls %q is not opportunistic, required or off", what, s.StartTLS))
	}
	if s.StartTLS != "" && s.StartTLS != mailer.StartTLSOff && s.Protocol == mailer.LMTP {
		errs = append(errs, fmt.Errorf("%s: starttls is for smtp; an lmtp server is local and is asked for none", what))
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s: timeout must be positive", what))
	}
	return errors.Join(errs...)
}

func (s *MailServer) server() *mailer.Server {
	if s == nil {
		return nil
	}
	return &mailer.Server{Protocol: s.Protocol, Address: s.Address, StartTLS: s.StartTLS, Timeout: time.Duration(s.Timeout)}
}

// provisionNotify starts the queue of the e-mail notices, stopped with the
// handler, and returns it; nil without notify.
func (h *Handler) provisionNotify() (*mailer.Queue, error) {
	n := h.Notify
	if n == nil {
		return nil, nil
	}
	h.observer.startMail()
	from, _ := mail.ParseAddress(n.From) // validated before
	relay := n.Relay.server()
	if relay == nil && n.Mail.Protocol == mailer.SMTP {
		relay = n.Mail.server()
	}
	q, err := mailer.NewQueue(mailer.QueueConfig{
		From:       from,
		Mailbox:    n.Mail.server(),
		Alternate:  relay,
		Size:       n.Queue,
		Tries:      n.Tries,
		Observe:    h.observer.mailOutcome,
		ObserveTry: h.observer.mailTry,
		Clock:      h.clock,
		Sleep:      h.mailSleep,
	})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	h.closers = append(h.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), mailCloseDeadline)
		defer cancel()
		if err := q.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	return q, nil
}

// notifyConfig is what the recovery flow is told of notify.
func (h *Handler) notifyConfig(c *recovery.Config) {
	n := h.Notify
	if n == nil {
		return
	}
	c.PublicURL = h.PublicURL
	c.NotMeTTL = time.Duration(n.LinkTTL)
	c.MailMailbox, c.MailAlternate = *n.Mailbox, *n.Alternate
}

// parseNotify reads
//
//	notify {
//	    mail  smtp|lmtp <host:port or unix/<path>> [{ starttls opportunistic|required|off; timeout <d> }]
//	    relay smtp <host:port> [{ ... }]   # for alternate addresses; default: mail, if smtp
//	    from  "Example Mail <noreply@example.com>"
//	    mailbox   on|off                   # default on
//	    alternate on|off                   # default on
//	    link_ttl  7d
//	    tries     5
//	    queue     100
//	}
func parseNotify(d *cf.Dispenser) (*Notify, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	n := &Notify{}
	seen := cfparse.Seen{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Once(d, "notify"); err != nil {
			return nil, err
		}
		var err error
		switch d.Val() {
		case "mail":
			n.Mail, err = parseMailServer(d, "notify: mail")
		case "relay":
			n.Relay, err = parseMailServer(d, "notify: relay")
		case "from":
			err = oneString(d, &n.From)
		case "mailbox":
			var on bool
			on, err = onOff(d)
			n.Mailbox = &on
		case "alternate":
			var on bool
			on, err = onOff(d)
			n.Alternate = &on
		case "link_ttl":
			err = oneDuration(d, &n.LinkTTL)
		case "tries":
			err = oneInt(d, &n.Tries)
		case "queue":
			err = oneInt(d, &n.Queue)
		default:
			return nil, cfparse.Unknown(d, "notify")
		}
		if err != nil {
			return nil, err
		}
	}
	return n, nil
}

func parseMailServer(d *cf.Dispenser, what string) (*MailServer, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Errf("%s: want <smtp|lmtp> <address>, such as smtp 127.0.0.1:25 or lmtp unix//run/dovecot/lmtp", what)
	}
	s := &MailServer{Protocol: args[0], Address: args[1]}
	if s.Protocol != mailer.SMTP && s.Protocol != mailer.LMTP {
		return nil, d.Errf("%s: '%s' is neither smtp nor lmtp", what, s.Protocol)
	}
	seen := cfparse.Seen{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Once(d, what); err != nil {
			return nil, err
		}
		var err error
		switch d.Val() {
		case "starttls":
			err = oneString(d, &s.StartTLS)
		case "timeout":
			err = oneDuration(d, &s.Timeout)
		default:
			return nil, cfparse.Unknown(d, what)
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}
