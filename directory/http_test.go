package directory

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// fakeDirectory answers like a directory service, checking what it is sent.
func fakeDirectory(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		account := r.URL.Query().Get("account")
		if r.Method != http.MethodGet || r.URL.Path != "/lookup" || r.URL.Query().Get("tenant") != "t1" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		if got := r.Header.Get("X-Recovery-Account"); got != account {
			t.Errorf("X-Recovery-Account = %q, query account = %q", got, account)
		}
		if r.Header.Get("Signature") != "sig:"+account {
			http.Error(w, "unsigned", http.StatusUnauthorized)
			return
		}
		switch account {
		case "alice@example.com":
			w.Write([]byte(`{"phone": "+31612345678", "lang": "nl"}`))
		case "a+b&c=d@example.com":
			w.Write([]byte(`{"phone": " +4915123456789 "}`))
		case "bob@example.com":
			http.NotFound(w, r)
		case "broken@example.com":
			http.Error(w, "oops", http.StatusInternalServerError)
		case "redirect@example.com":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "garbage@example.com":
			w.Write([]byte(`<html>not json</html>`))
		case "number@example.com":
			w.Write([]byte(`{"phone": 31612345678}`))
		case "nophone@example.com":
			w.Write([]byte(`{"lang": "nl"}`))
		case "null@example.com":
			w.Write([]byte(`null`))
		case "huge@example.com":
			w.Write([]byte(`{"phone": "+31612345678", "pad": "` + strings.Repeat("x", maxResponseBytes) + `"}`))
		case "slow@example.com":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			t.Errorf("unexpected account %q", account)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testSigner(r *http.Request) error {
	r.Header.Set("Signature", "sig:"+r.Header.Get("X-Recovery-Account"))
	return nil
}

func TestHTTPLookup(t *testing.T) {
	t.Parallel()
	srv := fakeDirectory(t)
	d, err := NewHTTP(HTTPConfig{URL: srv.URL + "/lookup?tenant=t1", Timeout: 200 * time.Millisecond, Sign: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		account string
		want    recovery.Entry
		wantErr error
		errText string // in the error
	}{
		{"alice@example.com", recovery.Entry{Phone: "+31612345678", Lang: "nl"}, nil, ""},
		{"a+b&c=d@example.com", recovery.Entry{Phone: "+4915123456789"}, nil, ""},
		{"bob@example.com", recovery.Entry{}, recovery.ErrUnknownAccount, ""},
		{"broken@example.com", recovery.Entry{}, recovery.ErrUnavailable, "status 500"},
		{"redirect@example.com", recovery.Entry{}, recovery.ErrUnavailable, "status 302"},
		{"garbage@example.com", recovery.Entry{}, recovery.ErrUnavailable, "not a JSON object"},
		{"number@example.com", recovery.Entry{}, recovery.ErrUnavailable, "not a JSON object"},
		{"nophone@example.com", recovery.Entry{}, recovery.ErrUnavailable, `no "phone"`},
		{"null@example.com", recovery.Entry{}, recovery.ErrUnavailable, `no "phone"`},
		{"huge@example.com", recovery.Entry{}, recovery.ErrUnavailable, "longer than"},
		{"slow@example.com", recovery.Entry{}, recovery.ErrUnavailable, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			t.Parallel()
			got, err := d.Lookup(context.Background(), tt.account)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Lookup(%q) error = %v, want %v", tt.account, err, tt.wantErr)
			}
			if errors.Is(err, recovery.ErrUnavailable) && errors.Is(err, recovery.ErrUnknownAccount) {
				t.Errorf("error %v is both unavailable and unknown", err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not contain %q", err, tt.errText)
			}
			if err != nil && (strings.Contains(err.Error(), "612345678") || strings.Contains(err.Error(), "tenant")) {
				t.Errorf("error %q holds a phone number or the url", err)
			}
			if got != tt.want {
				t.Errorf("Lookup(%q) = %+v, want %+v", tt.account, got, tt.want)
			}
		})
	}
}

// TestHTTPSendsTheCanonicalAccount: the directory service is asked for
// the account as the account rule spells it, and never for a name the rule
// refuses.
func TestHTTPSendsTheCanonicalAccount(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		asked []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Query().Get("account")+" | "+r.Header.Get("X-Recovery-Account"))
		mu.Unlock()
		w.Write([]byte(`{"phone": "+31612345678"}`))
	}))
	t.Cleanup(srv.Close)
	d, err := NewHTTP(HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Lookup(ctx, " Alice@Example.COM "); err != nil {
		t.Fatal(err)
	}
	for _, refused := range []string{"al\u200bice@example.com", "\u202ealice@example.com", "\u212aelvin@example.com", " "} {
		if e, err := d.Lookup(ctx, refused); !errors.Is(err, recovery.ErrUnknownAccount) {
			t.Errorf("Lookup(%+q) = %+v, %v; want ErrUnknownAccount", refused, e, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"alice@example.com | alice@example.com"}; !slices.Equal(asked, want) {
		t.Errorf("the directory was asked %q, want %q", asked, want)
	}
}

func TestHTTPLookupFailures(t *testing.T) {
	t.Parallel()
	srv := fakeDirectory(t)
	signErr := errors.New("no key")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name  string
		cfg   HTTPConfig
		ctx   func() context.Context
		cause error // also in the error, if set
	}{
		{"unsigned", HTTPConfig{URL: srv.URL + "/lookup?tenant=t1"}, context.Background, nil},
		{"signer fails", HTTPConfig{URL: srv.URL + "/lookup?tenant=t1", Sign: func(*http.Request) error { return signErr }}, context.Background, signErr},
		{"connection refused", HTTPConfig{URL: closed.URL + "/lookup?tenant=t1", Sign: testSigner}, context.Background, nil},
		{"caller gave up", HTTPConfig{URL: srv.URL + "/lookup?tenant=t1", Sign: testSigner}, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := NewHTTP(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Lookup(tt.ctx(), "alice@example.com")
			if !errors.Is(err, recovery.ErrUnavailable) {
				t.Errorf("Lookup error = %v, want recovery.ErrUnavailable", err)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("Lookup error = %v, want it to wrap %v", err, tt.cause)
			}
		})
	}
}

func TestHTTPDefaultTimeout(t *testing.T) {
	t.Parallel()
	d, err := NewHTTP(HTTPConfig{URL: "https://directory.example.com/lookup"})
	if err != nil {
		t.Fatal(err)
	}
	if d.timeout != DefaultHTTPTimeout || DefaultHTTPTimeout != 3*time.Second {
		t.Errorf("timeout = %s, want 3s", d.timeout)
	}
}

func TestNewHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  HTTPConfig
		want string
	}{
		{"empty", HTTPConfig{}, "not an absolute http or https url"},
		{"relative", HTTPConfig{URL: "/lookup"}, "not an absolute"},
		{"other scheme", HTTPConfig{URL: "ftp://directory.example.com/"}, "not an absolute"},
		{"no host", HTTPConfig{URL: "http:///lookup"}, "not an absolute"},
		{"unparsable", HTTPConfig{URL: "http://[::1"}, "invalid url"},
		{"fragment", HTTPConfig{URL: "https://directory.example.com/lookup#x"}, "fragment"},
		{"negative timeout", HTTPConfig{URL: "https://directory.example.com/", Timeout: -time.Second}, "negative timeout"},
		{"password redacted", HTTPConfig{URL: "ftp://user:s3cret@directory.example.com/"}, "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewHTTP(tt.cfg)
			if err == nil {
				t.Fatalf("NewHTTP(%+v) accepted", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q does not contain %q, or holds the password", err, tt.want)
			}
		})
	}
}

func BenchmarkHTTPLookup(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"phone": "+31612345678", "lang": "nl"}`))
	}))
	defer srv.Close()
	d, err := NewHTTP(HTTPConfig{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Lookup(context.Background(), "alice@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}
