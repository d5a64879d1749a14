package httpsms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
)

// Data is what the templates see of a message.
type Data struct {
	// To is the recipient in E.164, with its +.
	To string
	// MSISDN is To without the +, as many gateways want it.
	MSISDN string
	// Text is the message.
	Text string
	// Kind is code, notice or lock_notice.
	Kind string
	// Reference traces the message without the phone number.
	Reference string
	// IdempotencyKey is the same on every try of one message, and differs
	// between messages.
	IdempotencyKey string
	// Country is the recipient's ISO 3166 alpha-2 region.
	Country string
	// ValiditySeconds and ValidityMinutes say how long the text is useful,
	// rounded up; 0 for no limit.
	ValiditySeconds, ValidityMinutes int
	// ReportURL is where the provider reports delivery, when reports is
	// set; empty otherwise.
	ReportURL string
}

// globalPlaceholder matches what may be one of Caddy's global placeholders
// in a template: {env.NAME}, {file.path}, … Template actions start with
// "{{" and a field or a function, so "{{.To}}" does not match.
var globalPlaceholder = regexp.MustCompile(`\{[a-z]+\.[^{}\s]+\}`)

// templates parses the templates of one sender. The global placeholders
// in them are expanded once, at load, into values the templates hand out
// at run time: a secret ({env.KANNEL_PASSWORD}) is encoded like any other
// value, and it is never part of a template's source, so no parse error
// shows it.
type templates struct {
	repl   *caddy.Replacer
	values []string
	funcs  template.FuncMap
}

func newTemplates() *templates {
	ts := &templates{repl: caddy.NewReplacer()}
	ts.funcs = template.FuncMap{"placeholder": func(i int) string { return ts.values[i] }}
	return ts
}

// parse parses src, the template of what names in errors ("form to").
func (ts *templates) parse(what, src string) (*template.Template, error) {
	var expandErr error
	src = globalPlaceholder.ReplaceAllStringFunc(src, func(p string) string {
		v := p
		if err := placeholder.Expand(ts.repl, "sms http: "+what, &v); err != nil {
			expandErr = err
			return p
		}
		if v == p { // not a placeholder Caddy knows: text as written
			return p
		}
		ts.values = append(ts.values, v)
		return "{{placeholder " + strconv.Itoa(len(ts.values)-1) + "}}"
	})
	if expandErr != nil {
		return nil, expandErr
	}
	t, err := template.New(what).Funcs(ts.funcs).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("sms http: %s: %w", what, err)
	}
	return t, nil
}

// secrets returns the values the placeholders stood for, to be kept out
// of errors.
func (ts *templates) secrets() []string { return ts.values }

// render executes t with d.
func render(t *template.Template, d *Data) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// parseJSON parses a JSON document whose strings, keys aside, are
// templates: the document it renders has the same shape, each string the
// output of its template, JSON-encoded. Numbers, booleans and null stay
// as written.
func (ts *templates) parseJSON(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("sms http: json: not a JSON document: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("sms http: json: more than one JSON document")
	}
	return ts.compileJSON("json", v)
}

func (ts *templates) compileJSON(path string, v any) (any, error) {
	var err error
	switch v := v.(type) {
	case string:
		return ts.parse(path, v)
	case map[string]any:
		for k, e := range v {
			if v[k], err = ts.compileJSON(path+"."+k, e); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range v {
			if v[i], err = ts.compileJSON(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// renderJSON renders a document parseJSON returned, adding the strings
// it renders to sent.
func renderJSON(v any, d *Data, sent *[]string) (any, error) {
	switch v := v.(type) {
	case *template.Template:
		s, err := render(v, d)
		*sent = append(*sent, s)
		return s, err
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, err := renderJSON(e, d, sent)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := renderJSON(e, d, sent)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}
