package module

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// jsonToken walks alice through the JSON API and returns her reset token.
func (e *pageEnv) jsonToken() string {
	e.t.Helper()
	post := func(route, body string) map[string]any {
		e.t.Helper()
		resp, err := http.Post(e.url(route), "application/json", strings.NewReader(body))
		if err != nil {
			e.t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			e.t.Fatalf("%s: %d, body is not JSON: %v", route, resp.StatusCode, err)
		}
		return m
	}
	flow, _ := post("/start", `{"account":"alice@example.com"}`)["flow"].(string)
	token, _ := post("/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, e.code(flow, 1)))["reset_token"].(string)
	if token == "" {
		e.t.Fatal("no reset token")
	}
	return token
}

// TestResetForwardsNoQuery sends valid resets with a query string, which
// the signature does not cover, and checks that none reaches the upstream,
// neither in the URL nor in the request URI. It failed before forwardReset
// dropped the query.
func TestResetForwardsNoQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		reset func(e *pageEnv, path string) int
	}{
		{"json", "?account=admin%40example.com&user=admin", jsonReset},
		{"json with an empty query", "?", jsonReset},
		{"form with its token", "?account=admin%40example.com", func(e *pageEnv, path string) int {
			form := url.Values{"reset_token": {e.jsonToken()}, "password": {pageTestPassword}}
			resp, err := http.Post(e.url(path), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				e.t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}},
		{"pages", "?account=admin%40example.com", func(e *pageEnv, path string) int {
			b := e.browser()
			p, flow := e.startFlow(b, pageTestAccount)
			p = e.verifyFlow(b, p, flow, 1)
			return b.post(e.url(path), url.Values{"csrf": {p.field("csrf")}, "password": {pageTestPassword}, "password_again": {pageTestPassword}}).StatusCode
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, nil)
			if status := tt.reset(e, "/reset"+tt.query); status != http.StatusOK {
				t.Fatalf("reset answered %d, want 200", status)
			}
			got := e.upstream.got()
			if len(got) != 1 || got[0].Account != pageTestAccount {
				t.Fatalf("upstream got %+v, want one reset for %s", got, pageTestAccount)
			}
			if got[0].Query != "" {
				t.Errorf("the upstream got the unsigned query %q", got[0].Query)
			}
		})
	}
}

func jsonReset(e *pageEnv, path string) int {
	body := fmt.Sprintf(`{"reset_token":%q,"password":%q}`, e.jsonToken(), pageTestPassword)
	resp, err := http.Post(e.url(path), "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTakeToken checks what of a reset body reaches the upstream: all but
// the token, or only the fields of forward's allow-list.
func TestTakeToken(t *testing.T) {
	t.Parallel()
	const (
		jsonType = "application/json"
		formType = "application/x-www-form-urlencoded; charset=utf-8"
	)
	tests := []struct {
		name        string
		contentType string
		body        string
		fields      []string
		wantToken   string
		wantBody    string
		wantErr     bool
	}{
		{"json, every field but the token", jsonType,
			`{"reset_token":"t0k","password":"pw","account":"admin@example.com"}`, nil,
			"t0k", `{"account":"admin@example.com","password":"pw"}`, false},
		{"json, only the allowed fields", jsonType,
			`{"reset_token":"t0k","password":"pw","account":"admin@example.com","user":"admin","nested":{"a":1}}`, []string{"password"},
			"t0k", `{"password":"pw"}`, false},
		{"json, an allowed field may be absent", jsonType,
			`{"reset_token":"t0k","account":"admin@example.com"}`, []string{"password", "lang"},
			"t0k", `{}`, false},
		{"json, a repeated key counts once", jsonType,
			`{"reset_token":"t0k","password":"a","password":"b"}`, []string{"password"},
			"t0k", `{"password":"b"}`, false},
		{"form, every field but the token", formType,
			"reset_token=t0k&password=pw&account=admin%40example.com", nil,
			"t0k", "account=admin%40example.com&password=pw", false},
		{"form, only the allowed fields", formType,
			"reset_token=t0k&password=pw&account=admin%40example.com&user=admin&password=again", []string{"password"},
			"t0k", "password=pw&password=again", false},
		{"json, not an object", jsonType, `["reset_token"]`, []string{"password"}, "", "", true},
		{"json, token not a string", jsonType, `{"reset_token":7}`, nil, "", "", true},
		{"form, broken", formType, "reset_token=%zz", []string{"password"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token, body, err := takeToken(tt.contentType, []byte(tt.body), tt.fields)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("takeToken = %q, %q, want an error", token, body)
				}
				return
			}
			if err != nil || token != tt.wantToken || string(body) != tt.wantBody {
				t.Fatalf("takeToken = %q, %q, %v; want %q, %q", token, body, err, tt.wantToken, tt.wantBody)
			}
		})
	}
}

// TestResetDropsRoutingHeaders sends valid resets, from the JSON API, a
// form and the pages, with every header that re-routes a request inside a
// common framework: the signature covers the method and the path, and none
// of these may make the upstream run the signed request as another method
// or at another path. It failed before forwardReset dropped them.
func TestResetDropsRoutingHeaders(t *testing.T) {
	t.Parallel()
	sent := http.Header{}
	for _, name := range routingHeaders {
		sent.Set(name, "/admin/delete-account")
	}
	// A few by the spelling a client might use, which Go canonicalises.
	sent.Set("x-http-method-override", "DELETE")
	sent.Set("X-HTTP-METHOD", "PUT")
	sent.Set("Forwarded", `for=192.0.2.1;host=evil.example;proto=https`)
	post := func(e *pageEnv, contentType, body string) int {
		r, err := http.NewRequest(http.MethodPost, e.url("/reset"), strings.NewReader(body))
		if err != nil {
			e.t.Fatal(err)
		}
		r.Header = sent.Clone()
		r.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name  string
		reset func(e *pageEnv) int
	}{
		{"json", func(e *pageEnv) int {
			return post(e, "application/json", fmt.Sprintf(`{"reset_token":%q,"password":%q}`, e.jsonToken(), pageTestPassword))
		}},
		{"form", func(e *pageEnv) int {
			return post(e, "application/x-www-form-urlencoded",
				url.Values{"reset_token": {e.jsonToken()}, "password": {pageTestPassword}}.Encode())
		}},
		{"pages", func(e *pageEnv) int {
			b := e.browser()
			b.header = sent
			p, flow := e.startFlow(b, pageTestAccount)
			p = e.verifyFlow(b, p, flow, 1)
			return b.post(e.url("/reset"), url.Values{"csrf": {p.field("csrf")}, "password": {pageTestPassword}, "password_again": {pageTestPassword}}).StatusCode
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newPageEnv(t, nil)
			if status := tt.reset(e); status != http.StatusOK {
				t.Fatalf("reset answered %d, want 200", status)
			}
			got := e.upstream.got()
			if len(got) != 1 || got[0].Account != pageTestAccount {
				t.Fatalf("upstream got %+v, want one reset for %s", got, pageTestAccount)
			}
			hdr := e.upstream.gotHeaders()[0]
			for name := range sent {
				if v, ok := hdr[name]; ok {
					t.Errorf("the upstream got %s: %q", name, v)
				}
			}
		})
	}
}
