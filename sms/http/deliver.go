package httpsms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
)

// Deliver sends m and waits for the answer, for at most Timeout.
// Failures are *sms.Error values, permanent unless retrying may succeed.
func (s *HTTP) Deliver(ctx context.Context, m recovery.Message) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	req, sent, err := s.request(ctx, s.data(ctx, m))
	if err != nil {
		return &sms.Error{Provider: provider, Permanent: true, Err: err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// A *url.Error names the URL, whose query may hold a password:
		// only its cause is kept.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return &sms.Error{Provider: provider, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil && s.success(resp.StatusCode) {
		// Taken, perhaps, but unread: sending again could text the
		// person twice.
		return &sms.Error{Provider: provider, Status: resp.StatusCode, Permanent: true, Err: errors.New("answer unreadable")}
	}
	return s.classify(resp, body, sent)
}

// maxAnswerBytes bounds what is read of an answer.
const maxAnswerBytes = 64 << 10

// errNotTaken is the refusal of an answer that does not say the message
// was taken: a 2xx outside Success, or a body that does not match.
var errNotTaken = errors.New("the answer does not say the message was taken")

// classify turns an answer into nil or an *sms.Error; sent are the values
// the request carried, kept out of the error.
func (s *HTTP) classify(resp *http.Response, body []byte, sent []string) error {
	status := resp.StatusCode
	if s.success(status) && (s.successBody == nil || s.successBody.Match(body)) {
		return nil
	}
	e := &sms.Error{Provider: provider, Status: status, Detail: s.scrub(body, sent)}
	switch {
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		e.RetryAfter = sms.RetryAfter(resp.Header, time.Now())
	case status >= 200 && status <= 299:
		e.Permanent, e.Err = true, errNotTaken
	default:
		e.Permanent = true
	}
	return e
}

// digitRun is what a code or a phone number looks like in an answer.
var digitRun = regexp.MustCompile(`[0-9]{4,}`)

// maxDetail bounds the part of an answer an error quotes.
const maxDetail = 120

// scrub returns the first line of an answer's body for an error: without
// the values the request sent (the number, the text, the passwords), its
// runs of four or more digits masked, printable ASCII only and short. A
// gateway that quotes the request back must not put a code, a number or a
// secret in the log.
func (s *HTTP) scrub(body []byte, sent []string) string {
	line, _, _ := strings.Cut(string(body), "\n")
	for _, v := range sent {
		if len(v) < 4 {
			continue
		}
		quoted, _ := json.Marshal(v) // as a JSON body carried it
		for _, form := range []string{v, url.QueryEscape(v), string(quoted[1 : len(quoted)-1])} {
			line = strings.ReplaceAll(line, form, "…")
		}
	}
	line = digitRun.ReplaceAllString(line, "#")
	line = strings.Map(func(r rune) rune {
		if r == '…' || r >= ' ' && r <= '~' {
			return r
		}
		return '?'
	}, strings.TrimSpace(line))
	if len(line) > maxDetail {
		line = strings.ToValidUTF8(line[:maxDetail], "") + "…"
	}
	return line
}

// data is what the templates see of m.
func (s *HTTP) data(ctx context.Context, m recovery.Message) *Data {
	d := &Data{
		To: m.To, MSISDN: strings.TrimPrefix(m.To, "+"), Text: m.Body, Kind: m.Kind, Reference: m.Reference,
		IdempotencyKey: sms.IdempotencyKey(ctx), Country: report.Country(m.To),
	}
	if m.Validity > 0 {
		d.ValiditySeconds = int((m.Validity + time.Second - 1) / time.Second)
		d.ValidityMinutes = int((m.Validity + time.Minute - 1) / time.Minute)
	}
	if s.Reports == report.Kannel && s.reportURLs != nil {
		d.ReportURL = s.reportURLs.KannelURL(m)
	}
	return d
}

// request builds the request of d and lists the values it carries: those
// of the settings and the rendered ones. Its errors name the template at
// fault, never a value.
func (s *HTTP) request(ctx context.Context, d *Data) (*http.Request, []string, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, nil, errors.New("url does not parse")
	}
	sent := s.secrets(u)
	var body io.Reader
	contentType := ""
	if len(s.form) > 0 {
		form := url.Values{}
		for name, t := range s.form {
			v, err := render(t, d)
			if err != nil {
				return nil, nil, fmt.Errorf("form %s: %w", name, err)
			}
			form.Set(name, v)
			sent = append(sent, v)
		}
		if s.Method == http.MethodGet {
			q := u.Query()
			maps.Copy(q, form)
			u.RawQuery = q.Encode()
		} else {
			body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
		}
	}
	if s.json != nil {
		doc, err := renderJSON(s.json, d, &sent)
		if err != nil {
			return nil, nil, fmt.Errorf("json: %w", err)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("json: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, u.String(), body)
	if err != nil {
		return nil, nil, errors.New("the request could not be made")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := s.setHeaders(req, d, &sent); err != nil {
		return nil, nil, err
	}
	return req, append(sent, d.Text, d.To, d.MSISDN), nil
}

// secrets lists the values of the settings that may be secret: the
// placeholders' values, the credentials and the URL's own query.
func (s *HTTP) secrets(u *url.URL) []string {
	out := append([]string{s.Bearer}, s.tmpl.secrets()...)
	if a := s.BasicAuth; a != nil {
		out = append(out, a.User, a.Password)
	}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	return out
}

// setHeaders adds the authentication and the headers of d.
func (s *HTTP) setHeaders(req *http.Request, d *Data, sent *[]string) error {
	if a := s.BasicAuth; a != nil {
		req.SetBasicAuth(a.User, a.Password)
	}
	if s.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+s.Bearer)
	}
	if auth := req.Header.Get("Authorization"); auth != "" {
		*sent = append(*sent, auth)
	}
	for name, t := range s.headers {
		v, err := render(t, d)
		if err != nil {
			return fmt.Errorf("header %s: %w", name, err)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("header %s: the value has a line break", name)
		}
		req.Header.Set(name, v)
		*sent = append(*sent, v)
	}
	return nil
}

// Interface guards
var _ sms.Deliverer = (*HTTP)(nil)
