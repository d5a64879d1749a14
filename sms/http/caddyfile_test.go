package httpsms

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "kannel", Mod: new(HTTP), Input: `http http://127.0.0.1:13013/cgi-bin/sendsms {
			method GET
			form username gateway
			form password {env.KANNEL_PASSWORD}
			form to {{.To}}
			form text {{.Text}}
			form dlr-url {{.ReportURL}}
			reports kannel
			success 202
			success_body "^[03]: "
			timeout 5s
		}`, Want: `{"url":"http://127.0.0.1:13013/cgi-bin/sendsms","method":"GET","form":{"dlr-url":"{{.ReportURL}}",` +
			`"password":"{env.KANNEL_PASSWORD}","text":"{{.Text}}","to":"{{.To}}","username":"gateway"},` +
			`"success":["202"],"success_body":"^[03]: ","reports":"kannel","timeout":5000000000}`},
		{Name: "json api", Mod: new(HTTP), Input: "http https://api.example.com/sms {\n" +
			"bearer {env.SMS_TOKEN}\n" +
			"header Idempotency-Key {{.IdempotencyKey}}\n" +
			"json `{\"to\": \"{{.To}}\", \"text\": \"{{.Text}}\", \"validity\": 300}`\n" +
			"success 200 2xx\n}",
			Want: `{"url":"https://api.example.com/sms","headers":{"Idempotency-Key":"{{.IdempotencyKey}}"},` +
				`"json":{"to":"{{.To}}","text":"{{.Text}}","validity":300},"bearer":"{env.SMS_TOKEN}","success":["200","2xx"]}`},
		{Name: "basic auth", Mod: new(HTTP), Input: "http https://sms.example.com { \nbasic_auth gw {env.PW}\nform to {{.To}}\n}",
			Want: `{"url":"https://sms.example.com","form":{"to":"{{.To}}"},"basic_auth":{"user":"gw","password":"{env.PW}"}}`},
		{Name: "no url", Mod: new(HTTP), Input: "http", Want: "error: a url is required"},
		{Name: "two urls", Mod: new(HTTP), Input: "http https://a.example https://b.example", Want: "error: one url"},
		{Name: "form field twice", Mod: new(HTTP), Input: "http https://a.example {\nform to {{.To}}\nform to {{.MSISDN}}\n}",
			Want: "error: form to is given twice"},
		{Name: "header without value", Mod: new(HTTP), Input: "http https://a.example {\nheader X-Key\n}",
			Want: "error: header X-Key: a value is required"},
		{Name: "method twice", Mod: new(HTTP), Input: "http https://a.example {\nmethod GET\nmethod POST\n}",
			Want: "error: duplicate subdirective 'method'"},
		{Name: "json that is not", Mod: new(HTTP), Input: "http https://a.example {\njson {to}\n}", Want: "error: json: not a JSON document"},
		{Name: "unknown", Mod: new(HTTP), Input: "http https://a.example {\nbody form x\n}", Want: "error: unrecognized subdirective 'body'"},
		{Name: "success without status", Mod: new(HTTP), Input: "http https://a.example {\nsuccess\n}", Want: "error: wrong argument count"},
	})
}

func TestUnmarshalCaddyfileHidesSecrets(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("a very secret bearer token!"))
	for _, input := range []string{
		"http https://a.example {\nbearer " + secret + " more\n}",
		"http https://a.example {\nbasic_auth gw " + secret + " more\n}",
		"http https://a.example {\nform password " + secret + " more\n}",
		"http https://a.example {\nheader X-Key " + secret[:20] + "\n" + secret[20:] + "\n}",
	} {
		err := new(HTTP).UnmarshalCaddyfile(cf.NewTestDispenser(input))
		if err == nil {
			t.Errorf("%q was taken", input)
			continue
		}
		if strings.Contains(err.Error(), secret[:20]) || strings.Contains(err.Error(), secret[20:]) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Setenv("HTTPSMS_TEST_PASSWORD", "hunter22")
	form := map[string]string{"to": "{{.To}}", "text": "{{.Text}}"}
	tests := []struct {
		name string
		s    HTTP
		want string
	}{
		{"no url", HTTP{Form: form}, "url: required"},
		{"not http", HTTP{URL: "ftp://a.example/x?password=hunter22", Form: form}, "ftp://a.example/x is not an http or https URL"},
		{"credentials in the url", HTTP{URL: "https://gw:hunter22@a.example/", Form: form}, "use basic_auth"},
		{"method", HTTP{URL: "https://a.example", Method: "DELETE", Form: form}, `method: "DELETE" is not GET, POST or PUT`},
		{"form and json", HTTP{URL: "https://a.example", Form: form, JSON: json.RawMessage(`{"t":"{{.Text}}"}`)}, "give form or json, not both"},
		{"json with GET", HTTP{URL: "https://a.example", Method: "GET", JSON: json.RawMessage(`{"t":"{{.Text}}","n":"{{.To}}"}`)}, "a GET has no body"},
		{"two authentications", HTTP{URL: "https://a.example", Form: form, Bearer: "t", BasicAuth: &BasicAuth{User: "u", Password: "p"}},
			"basic_auth or bearer, not both"},
		{"authorization header too", HTTP{URL: "https://a.example", Form: form, Bearer: "t", Headers: map[string]string{"authorization": "x"}},
			"sets it already"},
		{"bad header name", HTTP{URL: "https://a.example", Form: form, Headers: map[string]string{"X Key": "x"}}, `"X Key" is not a header name`},
		{"unknown report form", HTTP{URL: "https://a.example", Form: form, Reports: "smpp"}, `"smpp" is not a form of report`},
		{"reports outside a gateway", HTTP{URL: "https://a.example", Form: form, Reports: "kannel"}, "nothing here takes delivery reports"},
		{"negative timeout", HTTP{URL: "https://a.example", Form: form, Timeout: -1}, "timeout -1ns is negative"},
		{"no text", HTTP{URL: "https://a.example", Form: map[string]string{"to": "{{.To}}"}}, "no template sends the message"},
		{"no recipient", HTTP{URL: "https://a.example", Form: map[string]string{"text": "{{.Text}}"}}, "no template names the recipient"},
		{"report url without reports", HTTP{URL: "https://a.example", Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}", "dlr": "{{.ReportURL}}"}},
			"empty without reports"},
		{"unknown field", HTTP{URL: "https://a.example", Form: map[string]string{"to": "{{.Phone}}", "text": "{{.Text}}"}},
			"can't evaluate field Phone"},
		{"template does not parse", HTTP{URL: "https://a.example", Form: map[string]string{"to": "{{.To", "text": "{{.Text}}"}}, "form to:"},
		{"unset placeholder", HTTP{URL: "https://a.example", Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}", "pw": "{env.HTTPSMS_TEST_UNSET}"}},
			"placeholder {env.HTTPSMS_TEST_UNSET} is empty"},
		{"success outside 2xx", HTTP{URL: "https://a.example", Form: form, Success: []string{"404"}}, "404 is not a 2xx status"},
		{"success that is no status", HTTP{URL: "https://a.example", Form: form, Success: []string{"ok"}}, "'ok' is neither a status code nor 2xx"},
		{"success_body", HTTP{URL: "https://a.example", Form: form, SuccessBody: "("}, "success_body: error parsing regexp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, &tt.s, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("load = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}

func TestPlaceholderValueNeverParsed(t *testing.T) {
	// A secret that looks like a template stays a value.
	t.Setenv("HTTPSMS_TEST_PASSWORD", "{{.Text}}{{")
	g := newGateway(t, nil)
	s := mustLoad(t, &HTTP{URL: g.URL, Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}", "pw": "{env.HTTPSMS_TEST_PASSWORD}"}})
	if err := s.Deliver(t.Context(), message("hello")); err != nil {
		t.Fatal(err)
	}
	if got := g.last(t).body; !strings.Contains(string(got), "pw=%7B%7B.Text%7D%7D%7B%7B") {
		t.Errorf("body = %s", got)
	}
}
