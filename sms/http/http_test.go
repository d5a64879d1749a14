package httpsms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
)

// gateway is a stand-in for an SMS gateway's API: it keeps every request
// and answers with respond.
type gateway struct {
	*httptest.Server
	respond func(w http.ResponseWriter, r *http.Request, body []byte)

	mu   sync.Mutex
	reqs []seen
}

type seen struct {
	method string
	query  url.Values
	header http.Header
	body   []byte
}

func newGateway(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, body []byte)) *gateway {
	t.Helper()
	g := &gateway{respond: respond}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.reqs = append(g.reqs, seen{method: r.Method, query: r.URL.Query(), header: r.Header.Clone(), body: body})
		g.mu.Unlock()
		if g.respond == nil {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "0: Accepted for delivery")
			return
		}
		g.respond(w, r, body)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) last(t *testing.T) seen {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.reqs) == 0 {
		t.Fatal("the gateway got no request")
	}
	return g.reqs[len(g.reqs)-1]
}

// load provisions and validates s as the gateway loads a sender, with
// report URLs in its context when urls is not nil.
func load(t *testing.T, s *HTTP, urls *report.URLs) (*HTTP, error) {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if urls != nil {
		ctx = report.With(ctx, urls)
	}
	mod, err := ctx.LoadModuleByID("http.handlers.sms_recovery.senders.http", raw)
	if err != nil {
		return nil, err
	}
	return mod.(*HTTP), nil
}

func mustLoad(t *testing.T, s *HTTP) *HTTP {
	t.Helper()
	loaded, err := load(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// hostile is a message text that tries to add fields to a form, a query
// and a JSON document, and to end a header.
const hostile = "Code 482913 \"quoted\" & to=+19005550000&text=evil\r\nX-Injected: yes\n{\"to\": \"+19005550000\"}, \\\" ' = % %d ü €"

func message(text string) recovery.Message {
	return recovery.Message{Kind: "code", To: "+31612345678", Body: text, Reference: "f-1a2b", Validity: 5 * time.Minute}
}

func TestKannelStyleGETEncodesEveryValue(t *testing.T) {
	t.Setenv("HTTPSMS_TEST_PASSWORD", `p&ss"w=rd %41`)
	g := newGateway(t, nil)
	s := mustLoad(t, &HTTP{
		URL:    g.URL + "/cgi-bin/sendsms?smsc=fake",
		Method: "GET",
		Form: map[string]string{
			"username": "gateway", "password": "{env.HTTPSMS_TEST_PASSWORD}",
			"to": "{{.To}}", "text": "{{.Text}}", "validity": "{{.ValidityMinutes}}", "from": "Example Mail",
		},
	})
	if err := s.Deliver(context.Background(), message(hostile)); err != nil {
		t.Fatal(err)
	}
	got := g.last(t)
	want := url.Values{
		"smsc": {"fake"}, "username": {"gateway"}, "password": {`p&ss"w=rd %41`},
		"to": {"+31612345678"}, "text": {hostile}, "validity": {"5"}, "from": {"Example Mail"},
	}
	if got.method != http.MethodGet || len(got.body) != 0 {
		t.Errorf("%s with a body of %d bytes, want a GET without one", got.method, len(got.body))
	}
	if !equalValues(got.query, want) {
		t.Errorf("query = %v\nwant    %v", got.query, want)
	}
}

func TestFormPOSTEncodesEveryValue(t *testing.T) {
	g := newGateway(t, nil)
	s := mustLoad(t, &HTTP{
		URL:  g.URL + "/send?account=7",
		Form: map[string]string{"msisdn": "{{.MSISDN}}", "message": "{{.Text}}", "ref": "{{.Reference}}"},
	})
	if err := s.Deliver(context.Background(), message(hostile)); err != nil {
		t.Fatal(err)
	}
	got := g.last(t)
	form, err := url.ParseQuery(string(got.body))
	if err != nil {
		t.Fatal(err)
	}
	if want := (url.Values{"msisdn": {"31612345678"}, "message": {hostile}, "ref": {"f-1a2b"}}); !equalValues(form, want) {
		t.Errorf("form = %v\nwant   %v", form, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" || got.method != http.MethodPost {
		t.Errorf("%s with Content-Type %q", got.method, ct)
	}
	if !equalValues(got.query, url.Values{"account": {"7"}}) {
		t.Errorf("the URL's own query became %v", got.query)
	}
}

func TestJSONBodyEncodesEveryString(t *testing.T) {
	t.Setenv("HTTPSMS_TEST_KEY", "k\"ey\\")
	g := newGateway(t, nil)
	s := mustLoad(t, &HTTP{
		URL: g.URL + "/v1/messages",
		JSON: json.RawMessage(`{"messages": [{"destinations": [{"to": "{{.To}}"}], "text": "{{.Text}}",
			"from": "ExampleMail", "validity": 300, "flash": false, "notify": null,
			"meta": {"key": "{env.HTTPSMS_TEST_KEY}", "kind": "{{.Kind}} {{.Country}}"}}]}`),
	})
	if err := s.Deliver(context.Background(), message(hostile)); err != nil {
		t.Fatal(err)
	}
	got := g.last(t)
	type destination struct {
		To string `json:"to"`
	}
	var doc struct {
		Messages []struct {
			Destinations []destination     `json:"destinations"`
			Text         string            `json:"text"`
			From         string            `json:"from"`
			Validity     json.Number       `json:"validity"`
			Flash        *bool             `json:"flash"`
			Notify       *string           `json:"notify"`
			Meta         map[string]string `json:"meta"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the body is not the document's shape: %v\n%s", err, got.body)
	}
	m := doc.Messages[0]
	if len(doc.Messages) != 1 || len(m.Destinations) != 1 || m.Destinations[0].To != "+31612345678" || m.Text != hostile ||
		m.From != "ExampleMail" || m.Validity != "300" || m.Flash == nil || *m.Flash || m.Notify != nil ||
		m.Meta["key"] != "k\"ey\\" || m.Meta["kind"] != "code NL" || len(m.Meta) != 2 {
		t.Errorf("body = %s", got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestHeadersAndAuthentication(t *testing.T) {
	t.Setenv("HTTPSMS_TEST_TOKEN", "t0ken")
	g := newGateway(t, nil)
	bearer := mustLoad(t, &HTTP{
		URL: g.URL, Bearer: "{env.HTTPSMS_TEST_TOKEN}",
		Headers: map[string]string{"Idempotency-Key": "{{.IdempotencyKey}}", "X-Kind": "{{.Kind}}"},
		JSON:    json.RawMessage(`{"to": "{{.To}}", "body": "{{.Text}}"}`),
	})
	ctx := sms.WithIdempotencyKey(context.Background(), "6f1c2d3e-key")
	if err := bearer.Deliver(ctx, message("code 123456")); err != nil {
		t.Fatal(err)
	}
	h := g.last(t).header
	if h.Get("Authorization") != "Bearer t0ken" || h.Get("Idempotency-Key") != "6f1c2d3e-key" || h.Get("X-Kind") != "code" {
		t.Errorf("headers = %v", h)
	}

	basic := mustLoad(t, &HTTP{URL: g.URL, BasicAuth: &BasicAuth{User: "gw", Password: "{env.HTTPSMS_TEST_TOKEN}"},
		Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}"}})
	if err := basic.Deliver(context.Background(), message("code 123456")); err != nil {
		t.Fatal(err)
	}
	if got := g.last(t).header.Get("Authorization"); got != "Basic Z3c6dDBrZW4=" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestHeaderCannotBeEnded(t *testing.T) {
	g := newGateway(t, nil)
	s := mustLoad(t, &HTTP{URL: g.URL, Headers: map[string]string{"X-Text": "{{.Text}}"},
		Form: map[string]string{"to": "{{.To}}"}})
	err := s.Deliver(context.Background(), message(hostile))
	var serr *sms.Error
	if !errors.As(err, &serr) || !serr.Permanent {
		t.Fatalf("Deliver = %v, want a permanent refusal", err)
	}
	if g.reqs != nil {
		t.Errorf("a request with the text in a header went out: %v", g.reqs[0].header)
	}
}

func TestClassification(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		header      http.Header
		success     []string
		successBody string
		permanent   bool
		ok          bool
		retryAfter  time.Duration
	}{
		{name: "202 taken", status: 202, body: "0: Accepted for delivery", ok: true},
		{name: "200 among the codes", status: 200, success: []string{"200", "202"}, ok: true},
		{name: "201 outside the codes", status: 201, success: []string{"200", "202"}, permanent: true},
		{name: "body matches", status: 200, body: "OK: id 7", successBody: "^OK", ok: true},
		{name: "200 with a refusal in the body", status: 200, body: "ERR: no credit", successBody: "^OK", permanent: true},
		{name: "429 with Retry-After", status: 429, header: http.Header{"Retry-After": {"7"}}, retryAfter: 7 * time.Second},
		{name: "500", status: 500},
		{name: "503 queue full", status: 503, body: "Queue full"},
		{name: "408", status: 408},
		{name: "400 refused", status: 400, body: "Missing receiver number, rejected", permanent: true},
		{name: "401", status: 401, permanent: true},
		{name: "403", status: 403, body: "Authorization failed for sendsms", permanent: true},
		{name: "404", status: 404, permanent: true},
		{name: "302 is not followed", status: 302, header: http.Header{"Location": {"/elsewhere"}}, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			s := mustLoad(t, &HTTP{URL: g.URL, Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}"},
				Success: tt.success, SuccessBody: tt.successBody})
			err := s.Deliver(context.Background(), message("code 123456"))
			if tt.ok {
				if err != nil {
					t.Fatalf("Deliver = %v, want it taken", err)
				}
				return
			}
			var serr *sms.Error
			if !errors.As(err, &serr) {
				t.Fatalf("Deliver = %v, want an *sms.Error", err)
			}
			if serr.Permanent != tt.permanent || serr.Status != tt.status || serr.RetryAfter != tt.retryAfter || serr.Provider != "http" {
				t.Errorf("Deliver = %#v", serr)
			}
			if len(g.reqs) != 1 {
				t.Errorf("%d requests, want 1", len(g.reqs))
			}
		})
	}
}

func TestNoAnswerIsRetried(t *testing.T) {
	release := make(chan struct{})
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select { // hangs until the client gives up, or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	for name, target := range map[string]string{"timeout": g.URL, "refused": "http://" + freeport.ClosedAddr(t)} {
		t.Run(name, func(t *testing.T) {
			s := mustLoad(t, &HTTP{URL: target + "/send?password=hunter22", Method: "GET", Timeout: caddy.Duration(50 * time.Millisecond),
				Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}"}})
			err := s.Deliver(context.Background(), message("code 123456"))
			var serr *sms.Error
			if !errors.As(err, &serr) || serr.Permanent || serr.Status != 0 || serr.Err == nil {
				t.Fatalf("Deliver = %#v, want a retryable error without a status", err)
			}
			for _, secret := range []string{"hunter22", "123456", "612345678"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows %q: %v", secret, err)
				}
			}
		})
	}
}

func TestErrorsHideWhatWasSent(t *testing.T) {
	t.Setenv("HTTPSMS_TEST_PASSWORD", "s3cretPassw0rd")
	// A gateway that quotes the whole request back in its refusal.
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.WriteHeader(http.StatusBadRequest)
		q, _ := url.QueryUnescape(r.URL.RawQuery)
		io.WriteString(w, "rejected "+q+" "+string(body)+" auth "+r.Header.Get("Authorization")+" user gw-user code 482913 for 0031612345678\nsecond line")
	})
	s := mustLoad(t, &HTTP{URL: g.URL + "/send?apikey=k3y-in-url", BasicAuth: &BasicAuth{User: "gw-user", Password: "{env.HTTPSMS_TEST_PASSWORD}"},
		Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}", "pin": "{env.HTTPSMS_TEST_PASSWORD}"}})
	err := s.Deliver(context.Background(), message("Your code 482913 for Example Mail"))
	var serr *sms.Error
	if !errors.As(err, &serr) || !serr.Permanent || serr.Detail == "" {
		t.Fatalf("Deliver = %#v, want a permanent refusal with the gateway's words", err)
	}
	for _, secret := range []string{"s3cretPassw0rd", "k3y-in-url", "gw-user", "482913", "612345678", "Your code", "second line", "Basic "} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows %q: %v", secret, err)
		}
	}
	if !strings.HasPrefix(serr.Detail, "rejected") || len(serr.Detail) > maxDetail+len("…") {
		t.Errorf("Detail = %q", serr.Detail)
	}
}

func TestReportURL(t *testing.T) {
	keys, err := recovery.NewKeyring(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	urls := report.NewURLs("https://mail.example.com/recovery/sms-report", keys)
	g := newGateway(t, nil)
	s, err := load(t, &HTTP{URL: g.URL, Method: "GET", Reports: "kannel",
		Form: map[string]string{"to": "{{.To}}", "text": "{{.Text}}", "dlr-mask": "31", "dlr-url": "{{.ReportURL}}"}}, urls)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), message("code 123456")); err != nil {
		t.Fatal(err)
	}
	dlrURL := g.last(t).query.Get("dlr-url")
	// Kannel fetches it with %d replaced by the DLR type.
	called, err := url.Parse(strings.Replace(dlrURL, "%d", "1", 1))
	if err != nil {
		t.Fatal(err)
	}
	r, err := urls.Kannel(called.Query())
	if err != nil {
		t.Fatalf("the report URL %q does not check: %v", dlrURL, err)
	}
	if r != (report.Report{Provider: "kannel", Country: "NL", Status: report.Delivered, Reference: "f-1a2b"}) {
		t.Errorf("report = %+v", r)
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if len(b[k]) != len(v) {
			return false
		}
		for i := range v {
			if b[k][i] != v[i] {
				return false
			}
		}
	}
	return true
}
