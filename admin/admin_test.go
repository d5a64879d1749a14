package admin

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestRequester(t *testing.T) {
	t.Parallel()
	withCert := httptest.NewRequest(http.MethodDelete, "/", nil)
	withCert.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{
		{Subject: pkix.Name{CommonName: "support-desk", Organization: []string{"Example"}}},
	}}
	plain := httptest.NewRequest(http.MethodDelete, "/", nil)
	plain.RemoteAddr = "[2001:db8::5]:41000"
	unix := httptest.NewRequest(http.MethodDelete, "/", nil)
	unix.RemoteAddr = "@"
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"client certificate", withCert, `certificate "CN=support-desk,O=Example"`},
		{"remote address", plain, "2001:db8::5"},
		{"unix socket", unix, "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := requester(tt.r); got != tt.want {
				t.Errorf("requester = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLockTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, kind, key string
		bad             bool
	}{
		{path: "/account/Alice@Example.com", kind: "account", key: "alice@example.com"},
		{path: "/account/alice%40example.com", kind: "account", key: "alice@example.com"},
		{path: "/ip/192.0.2.7", kind: "ip", key: "192.0.2.7"},
		{path: "/ip/2001:db8:1:2:3:4:5:6", kind: "ip", key: "2001:db8:1:2::/64"},
		{path: "/ip/2001:db8:1:2::/64", kind: "ip", key: "2001:db8:1:2::/64"},
		{path: "/ip/2001:db8::/48", bad: true},
		{path: "/ip/192.0.2.0/24", bad: true},
		{path: "/ip/not-an-ip", bad: true},
		{path: "/account/", bad: true},
		{path: "/phone/+31612345678", bad: true},
		{path: "/prefix/+447400", kind: "prefix", key: "+447400"},
		{path: "/prefix/447400", kind: "prefix", key: "+447400"},
		{path: "/prefix/%2B44%207400", kind: "prefix", key: "+447400"},
		{path: "/prefix/+44-7400", bad: true},
		{path: "/prefix/+", bad: true},
		{path: "/prefix/+1234567890123456", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse("http://localhost:2019" + LocksPath + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			kind, key, err := lockTarget(u)
			if tt.bad {
				if err == nil {
					t.Fatalf("lockTarget(%s) = %s %s, want an error", tt.path, kind, key)
				}
				return
			}
			if err != nil || kind != tt.kind || key != tt.key {
				t.Fatalf("lockTarget(%s) = %q %q %v, want %q %q", tt.path, kind, key, err, tt.kind, tt.key)
			}
		})
	}
}

func TestForParam(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  time.Duration
		bad   bool
	}{
		{query: "", want: 0},
		{query: "for=30m", want: 30 * time.Minute},
		{query: "for=7d", want: 7 * 24 * time.Hour},
		{query: "for=1s", want: time.Second},
		{query: "for=", bad: true},
		{query: "for=0", bad: true},
		{query: "for=500ms", bad: true},
		{query: "for=-1h", bad: true},
		{query: "for=soon", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			d, err := forParam(q)
			if tt.bad {
				if err == nil {
					t.Fatalf("forParam(%s) = %s, want an error", tt.query, d)
				}
				return
			}
			if err != nil || d != tt.want {
				t.Fatalf("forParam(%s) = %s, %v; want %s", tt.query, d, err, tt.want)
			}
		})
	}
}

func TestClearParam(t *testing.T) {
	t.Parallel()
	for query, want := range map[string]bool{"": false, "clear": true, "clear=1": true, "clear=true": true, "clear=0": false, "clear=false": false} {
		q, _ := url.ParseQuery(query)
		if got, err := clearParam(q); err != nil || got != want {
			t.Errorf("clearParam(%q) = %v, %v; want %v", query, got, err, want)
		}
	}
	q, _ := url.ParseQuery("clear=please")
	if _, err := clearParam(q); err == nil {
		t.Error("clearParam(clear=please): no error")
	}
}
