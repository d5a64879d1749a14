//go:build unix

package directorymodule_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/examples/directorymodule"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// TestThirdPartyDirectory runs a real Caddy whose gateway takes its phones
// from the static directory of this package, a module registered from
// outside the project's own packages and configured with the directive
// every source uses: a code reaches the module's phone for alice, and
// verifying it lets the reset through to the upstream, signed.
func TestThirdPartyDirectory(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, 64)
	v, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: "gw1", HMACKey: key})
	if err != nil {
		t.Fatal(err)
	}
	resets := make(chan string, 1)
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		account, err := v.Verify(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), body, time.Now())
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		resets <- account
		w.WriteHeader(http.StatusOK)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go upstream.Serve(ln)
	t.Cleanup(func() { upstream.Close() })

	outbox, sent := outboxLines(t)
	ports, err := freeport.Ports(2)
	if err != nil {
		t.Fatal(err)
	}
	adminPort, httpPort := ports[0], ports[1]
	site := fmt.Sprintf("http://localhost:%d", httpPort)
	config := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:%d
	http_port %d
	grace_period 1ns
}
%s {
	sms_recovery {
		directory static {
			Alice@Example.com +31612345678 nl
		}
		sms outbox %s
		storage memory {
			max_entries 4242
		}
		forward {
			path /api/reset-password
			key_id gw1
			hmac_key %s
		}
	}
	reverse_proxy %s
}
`, adminPort, httpPort, site, outbox, base64.StdEncoding.EncodeToString(key), ln.Addr())
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(config, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	post := func(path, body string) map[string]any {
		t.Helper()
		res, err := tester.Client.Post(site+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		if len(b) == 0 {
			return nil // the upstream's own answer to the reset
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %q: %v", path, b, err)
		}
		return out
	}

	start := post("/recovery/start", `{"account": "alice@example.com"}`)
	flow, _ := start["flow"].(string)
	sms := <-sent
	if sms.To != "+31612345678" {
		t.Fatalf("SMS to %s, want the module's phone for alice", sms.To)
	}
	code := codeIn(t, sms.Body)
	verified := post("/recovery/verify", fmt.Sprintf(`{"flow": %q, "code": %q}`, flow, code))
	token, _ := verified["reset_token"].(string)
	if token == "" {
		t.Fatalf("verify gave no reset token: %v", verified)
	}
	post("/recovery/reset", fmt.Sprintf(`{"reset_token": %q, "password": "N3w-s3cret-passw0rd!"}`, token))
	if got := <-resets; got != "alice@example.com" {
		t.Fatalf("the upstream got a reset for %q", got)
	}
}

// outboxLines makes the outbox a named pipe and returns the lines the
// gateway writes to it as they come: the test waits on them, not on a
// clock. The gateway opens the pipe when its config loads.
func outboxLines(t *testing.T) (string, <-chan outboxLine) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	lines := make(chan outboxLine, 16)
	go func() {
		f, err := os.Open(path) // blocks until the gateway opens it
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l outboxLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
	}()
	return path, lines
}

type outboxLine struct{ To, Body string }

// codeIn returns the six-digit code of an SMS body.
func codeIn(t *testing.T, body string) string {
	t.Helper()
	for _, w := range strings.Fields(body) {
		w = strings.Trim(w, ".,:")
		if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
			return w
		}
	}
	t.Fatalf("no code in %q", body)
	return ""
}
