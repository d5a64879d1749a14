package httpdirectory

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

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/directorytest"
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
			w.Write([]byte(`{"phone": "+31612345678", "lang": "nl", "email": " alice.private@example.net "}`))
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

// noSignature is a signer that leaves requests as they are.
func noSignature(*http.Request) error { return nil }

// provision readies h as the gateway does, with sign as its signer.
func provision(t testing.TB, h *HTTP, sign directory.RequestSigner) (*HTTP, error) {
	return h, directorytest.Provision(t, h, sign)
}

func TestHTTPLookup(t *testing.T) {
	t.Parallel()
	srv := fakeDirectory(t)
	d, err := provision(t, &HTTP{URL: srv.URL + "/lookup?tenant=t1", Timeout: caddy.Duration(200 * time.Millisecond)}, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	directorytest.Lookups(t, d, []directorytest.LookupCase{
		{Account: "alice@example.com", Want: recovery.Entry{Phone: "+31612345678", Lang: "nl", Email: "alice.private@example.net"}},
		{Account: "a+b&c=d@example.com", Want: recovery.Entry{Phone: "+4915123456789"}},
		{Account: "bob@example.com", WantErr: recovery.ErrUnknownAccount},
		{Account: "broken@example.com", WantErr: recovery.ErrUnavailable, ErrText: "status 500"},
		{Account: "redirect@example.com", WantErr: recovery.ErrUnavailable, ErrText: "status 302"},
		{Account: "garbage@example.com", WantErr: recovery.ErrUnavailable, ErrText: "not a JSON object"},
		{Account: "number@example.com", WantErr: recovery.ErrUnavailable, ErrText: "not a JSON object"},
		{Account: "nophone@example.com", WantErr: recovery.ErrUnavailable, ErrText: `no "phone"`},
		{Account: "null@example.com", WantErr: recovery.ErrUnavailable, ErrText: `no "phone"`},
		{Account: "huge@example.com", WantErr: recovery.ErrUnavailable, ErrText: "longer than"},
		{Account: "slow@example.com", WantErr: recovery.ErrUnavailable, ErrText: "deadline exceeded"},
	}, "612345678", "tenant")
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
	d, err := provision(t, &HTTP{URL: srv.URL}, noSignature)
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
		url   string
		sign  directory.RequestSigner
		ctx   func() context.Context
		cause error // also in the error, if set
	}{
		{"unsigned", srv.URL + "/lookup?tenant=t1", noSignature, context.Background, nil},
		{"signer fails", srv.URL + "/lookup?tenant=t1", func(*http.Request) error { return signErr }, context.Background, signErr},
		{"connection refused", closed.URL + "/lookup?tenant=t1", testSigner, context.Background, nil},
		{"caller gave up", srv.URL + "/lookup?tenant=t1", testSigner, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := provision(t, &HTTP{URL: tt.url}, tt.sign)
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
	d, err := provision(t, &HTTP{URL: "https://directory.example.com/lookup"}, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if d.Timeout != caddy.Duration(3*time.Second) {
		t.Errorf("timeout = %s, want 3s", time.Duration(d.Timeout))
	}
}

func TestHTTPRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    string
	}{
		{"empty", "", 0, "a url is required"},
		{"relative", "/lookup", 0, "not an absolute"},
		{"other scheme", "ftp://directory.example.com/", 0, "not an absolute"},
		{"no host", "http:///lookup", 0, "not an absolute"},
		{"unparsable", "http://[::1", 0, "invalid url"},
		{"fragment", "https://directory.example.com/lookup#x", 0, "fragment"},
		{"negative timeout", "https://directory.example.com/", -time.Second, "negative timeout"},
		{"password redacted", "ftp://user:s3cret@directory.example.com/", 0, "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := provision(t, &HTTP{URL: tt.url, Timeout: caddy.Duration(tt.timeout)}, testSigner)
			if err == nil {
				t.Fatalf("%q accepted", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q does not contain %q, or holds the password", err, tt.want)
			}
		})
	}
}

// TestHTTPModuleSigns shows that the http directory signs its lookups with
// the signer of the context that loads it, and refuses to load without one.
func TestHTTPModuleSigns(t *testing.T) {
	srv := fakeDirectory(t)
	raw := `{"url": "` + srv.URL + `/lookup?tenant=t1"}`
	if _, err := directorytest.Load(t, "http", raw, nil); err == nil || !strings.Contains(err.Error(), "directory http: loaded without a request signer") {
		t.Fatalf("load without a signer = %v", err)
	}
	d, err := directorytest.Load(t, "http", raw, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := d.Lookup(context.Background(), "alice@example.com"); err != nil || e.Phone != "+31612345678" {
		t.Fatalf("Lookup = %+v, %v", e, err)
	}
}

func BenchmarkHTTPLookup(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"phone": "+31612345678", "lang": "nl"}`))
	}))
	defer srv.Close()
	d, err := provision(b, &HTTP{URL: srv.URL}, noSignature)
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
