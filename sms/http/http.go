// Package httpsms is the SMS sender http.handlers.sms_recovery.senders.http:
// each message is one HTTP request to a gateway's or a provider's API,
// made from templates: Kannel's sendsms, or any API that takes a form or a
// JSON body.
//
// Values are encoded for where they go (a form or query field is
// URL-encoded, a JSON string JSON-encoded), so that no message text can add
// a field or end the document; templates never build a body as text.
// It must never log, or put in an error, a message body (it holds a
// one-time code), a full phone number or a secret of its settings.
package httpsms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
)

func init() {
	caddy.RegisterModule(HTTP{})
}

// HTTP sends each message as one request. JSON: {"provider": "http",
// "url": "http://127.0.0.1:13013/cgi-bin/sendsms", "method": "GET",
// "form": {"username": "gateway", "password": "{env.KANNEL_PASSWORD}",
// "to": "{{.To}}", "text": "{{.Text}}"}}.
//
// The values of Headers and Form and the strings of JSON are Go
// text/templates over Data, e.g. {{.Text}}; Caddy's global placeholders
// in them, such as {env.KANNEL_PASSWORD}, are expanded at load.
//
// An answer whose status is one of Success, and whose body matches
// SuccessBody when that is set, means the message was taken. 408, 429 and
// 5xx answers, timeouts and network errors are tried again (after the
// answer's Retry-After, if it names one); every other answer, a 2xx that
// does not say the message was taken included, is a refusal that no retry
// would change.
type HTTP struct {
	// URL is where each message goes, http or https. Placeholders are
	// expanded; it is not a template. Credentials go in BasicAuth, not in
	// the URL. Required.
	URL string `json:"url,omitempty"`

	// Method is GET, POST or PUT. With GET, Form goes in the query and
	// there is no body. Default: POST.
	Method string `json:"method,omitempty"`

	// Headers are added to each request, by name; the values are
	// templates, e.g. {"Idempotency-Key": "{{.IdempotencyKey}}"}.
	Headers map[string]string `json:"headers,omitempty"`

	// Form is sent as an application/x-www-form-urlencoded body, or with
	// GET added to the URL's query: field names and templates of their
	// values, each value URL-encoded.
	Form map[string]string `json:"form,omitempty"`

	// JSON is sent as an application/json body: a JSON document whose
	// strings are templates, each rendered and JSON-encoded; numbers,
	// booleans and null stay as written. At most one of Form and JSON.
	JSON json.RawMessage `json:"json,omitempty"`

	// BasicAuth sends HTTP basic authentication. Placeholders are expanded.
	BasicAuth *BasicAuth `json:"basic_auth,omitempty"`

	// Bearer sends Authorization: Bearer <token>. Placeholders are
	// expanded.
	Bearer string `json:"bearer,omitempty"`

	// Success lists the statuses that mean the message was taken: codes
	// such as 200 and 202, or 2xx for all of them; only 2xx statuses can
	// be. Default: 2xx.
	Success []string `json:"success,omitempty"`

	// SuccessBody, when set, is a regular expression (Go syntax) that the
	// body of a successful answer must match too, for APIs that answer
	// 200 to a refusal.
	SuccessBody string `json:"success_body,omitempty"`

	// Reports names the form of the delivery reports the provider sends
	// back to {{.ReportURL}}, which is empty without it: kannel, for
	// Kannel's dlr-url (its %d is the DLR type). The gateway counts them
	// per provider and country. Default: none.
	Reports string `json:"reports,omitempty"`

	// Timeout bounds one request. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	tmpl        *templates
	headers     map[string]*template.Template
	form        map[string]*template.Template
	json        any // JSON with its strings parsed
	success     func(status int) bool
	successBody *regexp.Regexp
	reportURLs  *report.URLs
	client      *http.Client
	transport   *http.Transport
}

// BasicAuth is a user name and a password.
type BasicAuth struct {
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

const provider = "http"

// CaddyModule returns the Caddy module information.
func (HTTP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.Namespace + "." + provider,
		New: func() caddy.Module { return new(HTTP) },
	}
}

// Provision expands the placeholders, parses the templates, fills the
// defaults and builds the HTTP client. The report URLs come from the
// gateway (report.With).
func (s *HTTP) Provision(ctx caddy.Context) error {
	if err := s.expand(); err != nil {
		return err
	}
	if s.Method == "" {
		s.Method = http.MethodPost
	}
	s.Method = strings.ToUpper(s.Method)
	if len(s.Success) == 0 {
		s.Success = []string{"2xx"}
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(10 * time.Second)
	}
	if err := s.parseTemplates(); err != nil {
		return err
	}
	var err error
	if s.success, err = parseSuccess(s.Success); err != nil {
		return fmt.Errorf("sms http: success: %w", err)
	}
	if s.SuccessBody != "" {
		if s.successBody, err = regexp.Compile(s.SuccessBody); err != nil {
			return fmt.Errorf("sms http: success_body: %w", err)
		}
	}
	s.reportURLs = report.From(ctx)
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConns = max(s.transport.MaxIdleConns, sms.DefaultWorkers)
	s.transport.MaxIdleConnsPerHost = sms.DefaultWorkers
	s.client = &http.Client{
		Transport:     s.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// expand expands the placeholders of the settings that are not templates.
func (s *HTTP) expand() error {
	fields := map[string]*string{"url": &s.URL, "bearer": &s.Bearer}
	if s.BasicAuth != nil {
		fields["basic_auth user"], fields["basic_auth password"] = &s.BasicAuth.User, &s.BasicAuth.Password
	}
	for name, f := range fields {
		if err := placeholder.Expand(nil, "sms http: "+name, f); err != nil {
			return err
		}
	}
	return nil
}

func (s *HTTP) parseTemplates() error {
	s.tmpl = newTemplates()
	var err error
	s.headers = make(map[string]*template.Template, len(s.Headers))
	for name, src := range s.Headers {
		if s.headers[name], err = s.tmpl.parse("header "+name, src); err != nil {
			return err
		}
	}
	s.form = make(map[string]*template.Template, len(s.Form))
	for name, src := range s.Form {
		if s.form[name], err = s.tmpl.parse("form "+name, src); err != nil {
			return err
		}
	}
	if len(s.JSON) > 0 {
		if s.json, err = s.tmpl.parseJSON(s.JSON); err != nil {
			return err
		}
	}
	return nil
}

// parseSuccess reads the success statuses.
func parseSuccess(list []string) (func(int) bool, error) {
	codes := map[int]bool{}
	for _, v := range list {
		if strings.EqualFold(v, "2xx") {
			return func(status int) bool { return status >= 200 && status <= 299 }, nil
		}
		code, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("'%s' is neither a status code nor 2xx", v)
		}
		if code < 200 || code > 299 {
			return nil, fmt.Errorf("%d is not a 2xx status: no other answer says a message was taken", code)
		}
		codes[code] = true
	}
	return func(status int) bool { return codes[status] }, nil
}

// Validate checks the settings, and renders a request from made-up values
// to check the templates: they must run, send the text and name the
// recipient. Errors name the setting as the Caddyfile spells it and quote
// no value that may be secret.
func (s *HTTP) Validate() error {
	var errs []error
	if err := checkURL(s.URL); err != nil {
		errs = append(errs, fmt.Errorf("sms http: url: %w", err))
	}
	switch s.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		errs = append(errs, fmt.Errorf("sms http: method: %q is not GET, POST or PUT", s.Method))
	}
	if len(s.Form) > 0 && len(s.JSON) > 0 {
		errs = append(errs, errors.New("sms http: give form or json, not both"))
	}
	if s.Method == http.MethodGet && len(s.JSON) > 0 {
		errs = append(errs, errors.New("sms http: json: a GET has no body; use form, which a GET sends in the query"))
	}
	if s.BasicAuth != nil && s.Bearer != "" {
		errs = append(errs, errors.New("sms http: give basic_auth or bearer, not both"))
	}
	for name := range s.Headers {
		if !headerName.MatchString(name) {
			errs = append(errs, fmt.Errorf("sms http: header: %q is not a header name", name))
		}
		if strings.EqualFold(name, "Authorization") && (s.BasicAuth != nil || s.Bearer != "") {
			errs = append(errs, errors.New("sms http: header Authorization: basic_auth or bearer sets it already"))
		}
	}
	if s.Reports != "" && s.Reports != report.Kannel {
		errs = append(errs, fmt.Errorf("sms http: reports: %q is not a form of report the gateway reads (kannel)", s.Reports))
	}
	if s.Reports != "" && s.reportURLs == nil {
		errs = append(errs, errors.New("sms http: reports: nothing here takes delivery reports (the sender is not loaded by sms_recovery)"))
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("sms http: timeout %s is negative", time.Duration(s.Timeout)))
	}
	if len(errs) == 0 {
		errs = append(errs, s.checkRender())
	}
	return errors.Join(errs...)
}

// headerName is a field name as RFC 9110 has it: a token.
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func checkURL(raw string) error {
	// The messages quote the URL without its query, which may hold a
	// password, and without credentials.
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("required")
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return fmt.Errorf("%s://%s%s is not an http or https URL", u.Scheme, u.Host, u.Path)
	case u.User != nil:
		return errors.New("must not hold credentials: use basic_auth")
	case u.Fragment != "":
		return errors.New("must not have a fragment")
	}
	return nil
}

// Markers stand for a message's fields in the request checkRender makes.
const (
	textMarker   = "textmarker7f3a"
	numberMarker = "99900017003"
	reportMarker = "reportmarker7f3a"
)

// checkRender renders a request from made-up values and checks that it
// carries the text and the recipient, and the report URL with reports.
func (s *HTTP) checkRender() error {
	d := &Data{To: "+" + numberMarker, MSISDN: numberMarker, Text: textMarker, Kind: "code", Reference: "ref",
		IdempotencyKey: "key", Country: "NL", ValiditySeconds: 300, ValidityMinutes: 5, ReportURL: reportMarker}
	req, _, err := s.request(context.Background(), d)
	if err != nil {
		return fmt.Errorf("sms http: %w", err)
	}
	var all strings.Builder
	all.WriteString(req.URL.String())
	for name, vs := range req.Header {
		fmt.Fprintf(&all, "\n%s: %s", name, strings.Join(vs, ", "))
	}
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		all.Write(b)
	}
	var errs []error
	if !strings.Contains(all.String(), textMarker) {
		errs = append(errs, errors.New("sms http: no template sends the message: use {{.Text}} in form, json or a header"))
	}
	if !strings.Contains(all.String(), numberMarker) {
		errs = append(errs, errors.New("sms http: no template names the recipient: use {{.To}} or {{.MSISDN}}"))
	}
	switch used := strings.Contains(all.String(), reportMarker); {
	case used && s.Reports == "":
		errs = append(errs, errors.New("sms http: a template uses {{.ReportURL}}, which is empty without reports (reports kannel)"))
	case !used && s.Reports != "":
		errs = append(errs, errors.New("sms http: reports: no template sends {{.ReportURL}}, so no report can come back"))
	}
	return errors.Join(errs...)
}

// Cleanup closes the idle connections. A later Deliver opens new ones.
func (s *HTTP) Cleanup() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*HTTP)(nil)
	_ caddy.Validator    = (*HTTP)(nil)
	_ caddy.CleanerUpper = (*HTTP)(nil)
)
