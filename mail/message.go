package mail

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Build returns m as a message from from, sent at now: CRLF lines, the
// headers a receiver expects of an automatic notice, the subject encoded
// per RFC 2047 where it is not plain ASCII, and the body as
// quoted-printable UTF-8 text, which any server carries unchanged.
func Build(from *mail.Address, m recovery.Mail, now time.Time, random io.Reader) ([]byte, error) {
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(random, id); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	domain := "localhost"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 {
		domain = from.Address[i+1:]
	}
	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("Date", now.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", (&mail.Address{Address: to.Address}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	if m.Lang != "" {
		header("Content-Language", m.Lang)
	}
	// RFC 3834: no vacation reply or other automatic answer to a notice.
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := io.WriteString(qp, body); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// oneLine folds the line breaks of a header value into spaces: a
// subject holds none, and one that did would start a header of its own.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
