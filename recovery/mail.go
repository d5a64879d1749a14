package recovery

import (
	"context"
	"net/mail"
	"strings"
	"text/template"
	"time"
)

// Mail is one e-mail notice, as the flow composes it: plain text, which
// the mailer wraps in a message with its own From, Date and Message-ID.
type Mail struct {
	Kind string // MailMailbox or MailAlternate
	// To is the address: the account itself, or its alternate address.
	To string
	// Masked is To masked with MaskAccount, for reports.
	Masked    string
	Subject   string
	Body      string
	Reference string // traces the notice without the address
	// Lang is the language of the text (BCP 47 primary tag).
	Lang string
}

// Kinds of Mail.
const (
	MailMailbox   = "mailbox"   // into the account's own mailbox
	MailAlternate = "alternate" // to the directory's alternate address
)

// Mailer delivers e-mail notices. Like a Sender, Mail must not block on
// the network: it queues, and delivers in the background. It returns
// ErrQueueFull when it cannot take the message.
type Mailer interface {
	Mail(ctx context.Context, m Mail) error
}

// EventMailNotice is a reset notice queued for an e-mail address;
// EventMailFailed one the mailer could not take.
const (
	EventMailNotice = "mail_notice"
	EventMailFailed = "mail_failed"
)

// MailData is what the text of a mail notice uses.
type MailData struct {
	SiteName string
	Account  string
	Time     string // when the password changed, RFC 1123 in UTC
	Link     string // the not-me link, or ""
	Until    string // until when the link works
	Support  string
}

// mailTexts are the subject and body of the reset notice by language.
var mailTexts = map[string]struct{ subject, body string }{
	"en": {
		subject: `Your {{.SiteName}} password was changed`,
		body: `The password of your {{.SiteName}} account {{.Account}} was changed on {{.Time}}, through password recovery by text message.

If this was you, there is nothing to do.
{{if .Link}}
If this was not you, someone else may have your account. Lock its password recovery at once with this link, then contact support:

{{.Link}}

The link works once, until {{.Until}}.
{{else}}
If this was not you, someone else may have your account: contact support at once.
{{end}}{{with .Support}}
{{.}}
{{end}}`,
	},
	"de": {
		subject: `Ihr {{.SiteName}} Passwort wurde geändert`,
		body: `Das Passwort Ihres {{.SiteName}} Kontos {{.Account}} wurde am {{.Time}} über die Passwort-Wiederherstellung per SMS geändert.

Waren Sie das, ist nichts weiter zu tun.
{{if .Link}}
Waren Sie das nicht, hat womöglich jemand anderes Ihr Konto. Sperren Sie seine Passwort-Wiederherstellung sofort mit diesem Link und wenden Sie sich dann an den Support:

{{.Link}}

Der Link funktioniert einmal, bis {{.Until}}.
{{else}}
Waren Sie das nicht, hat womöglich jemand anderes Ihr Konto: wenden Sie sich sofort an den Support.
{{end}}{{with .Support}}
{{.}}
{{end}}`,
	},
	"nl": {
		subject: `Uw {{.SiteName}} wachtwoord is gewijzigd`,
		body: `Het wachtwoord van uw {{.SiteName}} account {{.Account}} is op {{.Time}} gewijzigd via wachtwoordherstel per sms.

Was u dit, dan hoeft u niets te doen.
{{if .Link}}
Was u dit niet, dan heeft iemand anders mogelijk uw account. Blokkeer het wachtwoordherstel direct met deze link en neem daarna contact op met support:

{{.Link}}

De link werkt één keer, tot {{.Until}}.
{{else}}
Was u dit niet, dan heeft iemand anders mogelijk uw account: neem direct contact op met support.
{{end}}{{with .Support}}
{{.}}
{{end}}`,
	},
	"fr": {
		subject: `Le mot de passe de votre compte {{.SiteName}} a été modifié`,
		body: `Le mot de passe de votre compte {{.SiteName}} {{.Account}} a été modifié le {{.Time}}, par la récupération du mot de passe par SMS.

Si c'était vous, il n'y a rien à faire.
{{if .Link}}
Si ce n'était pas vous, quelqu'un d'autre a peut-être votre compte. Bloquez tout de suite la récupération de son mot de passe avec ce lien, puis contactez le support :

{{.Link}}

Le lien fonctionne une fois, jusqu'au {{.Until}}.
{{else}}
Si ce n'était pas vous, quelqu'un d'autre a peut-être votre compte : contactez tout de suite le support.
{{end}}{{with .Support}}
{{.}}
{{end}}`,
	},
}

// mailTemplates are mailTexts parsed, once.
var mailTemplates = func() map[string][2]*template.Template {
	m := make(map[string][2]*template.Template, len(mailTexts))
	for lang, t := range mailTexts {
		m[lang] = [2]*template.Template{
			template.Must(template.New(lang + " subject").Parse(t.subject)),
			template.Must(template.New(lang + " body").Parse(t.body)),
		}
	}
	return m
}()

// RenderResetMail returns the subject and body of the reset notice in
// lang (the default language's when it has none).
func RenderResetMail(lang string, d MailData) (subject, body string, err error) {
	t, ok := mailTemplates[primaryLang(lang)]
	if !ok {
		t = mailTemplates[DefaultLang]
	}
	var sb, bb strings.Builder
	if err := t[0].Execute(&sb, d); err != nil {
		return "", "", err
	}
	if err := t[1].Execute(&bb, d); err != nil {
		return "", "", err
	}
	return sb.String(), bb.String(), nil
}

// mailNotices queues the e-mail notices of a reset of account: into its
// mailbox, when the account is an address, and to the entry's alternate
// address, each with a not-me link of its own. Nothing here fails the
// reset: a notice that cannot be made or queued is reported and dropped.
func (s *Service) mailNotices(ctx context.Context, account string, entry Entry, ev Event) {
	if s.Mailer == nil {
		return
	}
	var to []Mail
	if s.cfg.MailMailbox {
		if a, err := mail.ParseAddress(account); err == nil && a.Name == "" && a.Address == account {
			to = append(to, Mail{Kind: MailMailbox, To: account})
		}
	}
	if alt := strings.TrimSpace(entry.Email); s.cfg.MailAlternate && alt != "" && !strings.EqualFold(alt, account) {
		if a, err := mail.ParseAddress(alt); err == nil {
			to = append(to, Mail{Kind: MailAlternate, To: a.Address})
		}
	}
	lang := s.lang(entry)
	now := s.Clock.Now().UTC()
	for _, m := range to {
		link, err := s.notMeLink(account)
		d := MailData{SiteName: s.cfg.SiteName, Account: account, Time: now.Format(time.RFC1123),
			Link: link, Until: now.Add(s.cfg.NotMeTTL).Format(time.RFC1123), Support: s.cfg.Support}
		if err == nil {
			m.Subject, m.Body, err = RenderResetMail(lang, d)
		}
		m.Masked, m.Reference, m.Lang = MaskAccount(m.To), ev.FlowRef, lang
		e := ev
		e.Reason = m.Kind + " " + m.Masked
		if err == nil {
			err = s.Mailer.Mail(ctx, m)
		}
		if err != nil {
			e.Name, e.Reason = EventMailFailed, e.Reason+": "+err.Error()
			s.Observer.Observe(ctx, e)
			continue
		}
		e.Name = EventMailNotice
		s.Observer.Observe(ctx, e)
	}
}
