package caddyfile_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestPublicURLFromSiteAddress adapts a site block with each address and
// checks the public_url the adapter fills in: the site address when it
// names exactly one host, by Caddy's rules for schemes and ports, and
// nothing otherwise, which then fails the load.
func TestPublicURLFromSiteAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		global, address, explicit string
		want                      string // "" for none
	}{
		{address: "mail.example.com", want: "https://mail.example.com"},
		{address: "Mail.Example.com", want: "https://mail.example.com"},
		{address: "https://mail.example.com", want: "https://mail.example.com"},
		{address: "mail.example.com:443", want: "https://mail.example.com"},
		{address: "mail.example.com:8443", want: "https://mail.example.com:8443"},
		{address: "mail.example.com/recovery*", want: "https://mail.example.com"},
		{address: "http://mail.example.com", want: "http://mail.example.com"},
		{address: "mail.example.com:80", want: "http://mail.example.com"},
		{address: "http://localhost:8080", want: "http://localhost:8080"},
		{address: "localhost:8080", want: "https://localhost:8080"},
		{address: "127.0.0.1:8443", want: "https://127.0.0.1:8443"},
		{address: "[::1]:8443", want: "https://[::1]:8443"},
		{address: "[::1]", want: "https://[::1]"},
		{global: "http_port 8080", address: "localhost:8080", want: "http://localhost:8080"},
		{global: "https_port 8443", address: "mail.example.com", want: "https://mail.example.com:8443"},
		{global: "http_port 8080", address: "http://mail.example.com", want: "http://mail.example.com:8080"},
		{address: "mail.example.com, mail.example.com:443", want: "https://mail.example.com"},
		{address: "mail.example.com, www.example.com"},
		{address: "http://mail.example.com, https://mail.example.com"},
		{address: ":8080"},
		{address: "http://"},
		{address: "*.example.com"},
		{address: ":8080", explicit: "https://mail.example.com", want: "https://mail.example.com"},
		{address: "mail.example.com", explicit: "https://webmail.example.com", want: "https://webmail.example.com"},
	}
	for _, tt := range tests {
		name := tt.address
		if tt.global != "" {
			name = tt.global + "; " + name
		}
		if tt.explicit != "" {
			name += "; public_url " + tt.explicit
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			explicit := ""
			if tt.explicit != "" {
				explicit = "public_url " + tt.explicit
			}
			caddyfile := fmt.Sprintf("{\n\t%s\n}\n%s {\n\tsms_recovery {\n\t\t%s\n\t}\n}\n", tt.global, tt.address, explicit)
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err != nil {
				t.Fatalf("adapt: %v\n%s", err, caddyfile)
			}
			got := publicURLOf(t, out)
			if got != tt.want {
				t.Errorf("public_url = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPublicURLInRoutes checks that the address reaches a directive nested
// in handle and route blocks too, and that a named route, which belongs to
// no site, gets none.
func TestPublicURLInRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, caddyfile, want string
	}{
		{"handle", "mail.example.com {\n\thandle /recovery* {\n\t\tsms_recovery\n\t}\n}\n", "https://mail.example.com"},
		{"route in handle", "mail.example.com {\n\thandle {\n\t\troute {\n\t\t\tsms_recovery\n\t\t}\n\t}\n}\n", "https://mail.example.com"},
		{"named route", "&(recovery) {\n\tsms_recovery\n}\nmail.example.com {\n\tinvoke recovery\n}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tt.caddyfile), nil)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if got := publicURLOf(t, out); got != tt.want {
				t.Errorf("public_url = %q, want %q", got, tt.want)
			}
		})
	}
}

// publicURLOf returns the public_url of the sms_recovery handlers in an
// adapted config (a site on two ports has one in each server), or "" if
// they have none.
func publicURLOf(t *testing.T, config []byte) string {
	t.Helper()
	var found []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "sms_recovery" {
				s, _ := v["public_url"].(string)
				found = append(found, s)
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	var parsed any
	if err := json.Unmarshal(config, &parsed); err != nil {
		t.Fatal(err)
	}
	walk(parsed)
	if len(found) == 0 || slices.ContainsFunc(found, func(s string) bool { return s != found[0] }) {
		t.Fatalf("config has sms_recovery handlers with public_url %q, want one or more with the same:\n%s", found, config)
	}
	return found[0]
}
