package httpsms

import (
	"encoding/json"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
)

// UnmarshalCaddyfile reads
//
//	sms http <url> {
//	    method       GET|POST|PUT          # default POST; GET sends form in the query
//	    header       <name> <template>     # each name once
//	    form         <name> <template>     # each name once
//	    json         <document>            # a JSON document whose strings are templates
//	    basic_auth   <user> <password>
//	    bearer       <token>
//	    success      <status>...           # 2xx codes, or 2xx (the default)
//	    success_body <regexp>
//	    reports      kannel
//	    timeout      <duration>            # default 10s
//	}
func (s *HTTP) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("sms http: a url is required (sms http <url> { ... })")
	}
	s.URL = d.Val()
	if d.NextArg() {
		return d.Err("sms http: one url, and the settings in a block")
	}
	return cfparse.Block(d, "sms http", map[string]func() error{
		"method":       func() error { return cfparse.String(d, &s.Method) },
		"header":       func() error { return pairs(d, "header", &s.Headers) },
		"form":         func() error { return pairs(d, "form", &s.Form) },
		"json":         func() error { return s.readJSON(d) },
		"basic_auth":   func() error { return s.readBasicAuth(d) },
		"bearer":       func() error { return cfparse.Secret(d, "sms http: bearer", &s.Bearer) },
		"success":      func() error { return readList(d, &s.Success) },
		"success_body": func() error { return cfparse.String(d, &s.SuccessBody) },
		"reports":      func() error { return cfparse.String(d, &s.Reports) },
		"timeout":      func() error { return cfparse.Duration(d, &s.Timeout) },
	}, "header", "form")
}

// pairs reads "<name> <value>" into m, each name once. The value is not
// quoted in errors: it may be a secret.
func pairs(d *cf.Dispenser, what string, m *map[string]string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("sms http: %s %s: a value is required", what, name)
	}
	value := d.Val()
	if d.NextArg() {
		return d.Errf("sms http: %s %s: one value (quote one that holds spaces)", what, name)
	}
	if _, dup := (*m)[name]; dup {
		return d.Errf("sms http: %s %s is given twice", what, name)
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[name] = value
	return nil
}

func (s *HTTP) readJSON(d *cf.Dispenser) error {
	var doc string
	if err := cfparse.String(d, &doc); err != nil {
		return err
	}
	if !json.Valid([]byte(doc)) {
		return d.Err("sms http: json: not a JSON document (quote it with backticks: json `{\"text\": \"{{.Text}}\"}`)")
	}
	s.JSON = json.RawMessage(doc)
	return nil
}

func (s *HTTP) readBasicAuth(d *cf.Dispenser) error {
	var a BasicAuth
	if !d.NextArg() {
		return d.ArgErr()
	}
	a.User = d.Val()
	if !d.NextArg() {
		return d.Err("sms http: basic_auth: a user and a password are required")
	}
	a.Password = d.Val()
	if d.NextArg() {
		return d.Err("sms http: basic_auth: a user and a password, and nothing after them (the rest is not shown: it may be part of a secret)")
	}
	s.BasicAuth = &a
	return nil
}

// readList reads one or more arguments.
func readList(d *cf.Dispenser, list *[]string) error {
	for d.NextArg() {
		*list = append(*list, d.Val())
	}
	if len(*list) == 0 {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var _ cf.Unmarshaler = (*HTTP)(nil)
