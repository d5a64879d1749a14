package instances

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
)

// keyID names the forward key in the gateway and the upstream.
const keyID = "gw1"

// resetPath is where the gateway forwards a reset.
const resetPath = "/api/reset-password"

// upstream stands in for the legacy mail service: it accepts a reset only
// with a valid gateway signature, which it checks with package httpsig, and
// records what reached it.
type upstream struct {
	addr     string // host:port
	verifier *httpsig.Verifier

	mu      sync.Mutex
	resets  []received
	refused []string
}

// received is one reset that passed the signature check.
type received struct {
	account string
	body    string
}

func startUpstream(t *testing.T, hmacKey []byte) *upstream {
	t.Helper()
	v, err := httpsig.NewVerifier(httpsig.VerifierConfig{KeyID: keyID, HMACKey: hmacKey})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{verifier: v}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	u.addr = srv.Listener.Addr().String()
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	account, err := u.verifier.Verify(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), body, time.Now())
	if r.URL.Path != resetPath || err != nil {
		u.refused = append(u.refused, fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err))
		http.Error(w, "no valid gateway signature", http.StatusUnauthorized)
		return
	}
	u.resets = append(u.resets, received{account: account, body: string(body)})
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"changed":%q}`, account)
}

// resetsFor returns the signed resets that reached the upstream for account.
func (u *upstream) resetsFor(account string) []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []received
	for _, r := range u.resets {
		if r.account == account {
			out = append(out, r)
		}
	}
	return out
}

// refusals returns the requests the upstream turned away.
func (u *upstream) refusals() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.refused...)
}

// answer is one answer of an instance.
type answer struct {
	Status  int
	Header  http.Header
	Body    map[string]any
	Raw     string
	Elapsed time.Duration
}

func (a answer) str(key string) string {
	s, _ := a.Body[key].(string)
	return s
}

// retryAfter is the Retry-After header in whole seconds, or -1.
func (a answer) retryAfter() int {
	n, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if err != nil {
		return -1
	}
	return n
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s", a.Status, strings.TrimSpace(a.Raw))
}

// do posts a JSON body to path and decodes the JSON answer.
func (n *instance) do(path, body string) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, n.base+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	res, err := n.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	raw := readAll(res.Body)
	a := answer{Status: res.StatusCode, Header: res.Header, Raw: raw, Elapsed: time.Since(began)}
	_ = json.Unmarshal([]byte(raw), &a.Body)
	return a, nil
}

// post is do that fails the test on a transport error.
func (n *instance) post(t *testing.T, path, body string) answer {
	t.Helper()
	a, err := n.do(path, body)
	if err != nil {
		t.Fatalf("instance %s: POST %s: %v", n.name, path, err)
	}
	return a
}

// get fetches path and returns the status and body.
func (n *instance) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := n.client.Get(n.base + path)
	if err != nil {
		t.Fatalf("instance %s: GET %s: %v", n.name, path, err)
	}
	return res.StatusCode, readAll(res.Body)
}

func startBody(account string) string { return fmt.Sprintf(`{"account":%q}`, account) }

func flowBody(flow string) string { return fmt.Sprintf(`{"flow":%q}`, flow) }

func verifyBody(flow, code string) string {
	return fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code)
}

// newPassword is the field the upstream receives with each reset.
const newPassword = `"password":"N3w-s3cret-passw0rd!"`

func resetBody(token string) string {
	return fmt.Sprintf(`{"reset_token":%q,%s}`, token, newPassword)
}

// startFlow starts a flow for account and returns its ID.
func (n *instance) startFlow(t *testing.T, account string) string {
	t.Helper()
	a := n.post(t, "/recovery/start", startBody(account))
	if a.Status != http.StatusAccepted || a.str("flow") == "" {
		t.Fatalf("instance %s: start for %s = %v, want 202 with a flow", n.name, account, a)
	}
	return a.str("flow")
}

// verify verifies a flow and returns its reset token.
func (n *instance) verify(t *testing.T, flow, code string) string {
	t.Helper()
	a := n.post(t, "/recovery/verify", verifyBody(flow, code))
	if a.Status != http.StatusOK || a.str("reset_token") == "" {
		t.Fatalf("instance %s: verify = %v, want 200 with a reset_token", n.name, a)
	}
	return a.str("reset_token")
}

// reset spends a token and checks that the upstream's answer came back.
func (n *instance) reset(t *testing.T, token, account string) {
	t.Helper()
	a := n.post(t, "/recovery/reset", resetBody(token))
	if a.Status != http.StatusOK || a.str("changed") != account {
		t.Fatalf("instance %s: reset = %v, want 200 {\"changed\":%q}", n.name, a, account)
	}
}

var (
	flowInLink = regexp.MustCompile(`[?&]flow=([A-Za-z0-9_-]+)`)
	codeLine   = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)
)

// outboxLine is one message the outbox sender wrote.
type outboxLine struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// readOutbox makes the instance's outbox a named pipe and reads it in the
// background: each code it carries is kept and announced, so that tests
// wait on the message, not on a clock. The gateway opens the pipe at its
// first message; the reader opens it again after each writer leaves, until
// the test ends.
func (n *instance) readOutbox(t *testing.T) {
	t.Helper()
	if err := syscall.Mkfifo(n.outbox, 0o600); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for !done.Load() {
			f, err := os.Open(n.outbox) // waits for a writer
			if err != nil {
				return
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l outboxLine
				if json.Unmarshal(sc.Bytes(), &l) != nil {
					continue
				}
				flow, code := flowInLink.FindStringSubmatch(l.Body), codeLine.FindStringSubmatch(l.Body)
				if flow != nil && code != nil {
					n.mu.Lock()
					n.sent[flow[1]] = code[1]
					n.mu.Unlock()
					n.arrived.Broadcast()
				}
			}
			f.Close()
		}
	}()
	t.Cleanup(func() {
		done.Store(true)
		// A writer of our own lets a reader waiting to open go on, and
		// leaving gives it the end of the pipe.
		if w, err := os.OpenFile(n.outbox, os.O_RDWR, 0); err == nil {
			w.Close()
		}
		<-ended
	})
}

// codes returns the codes the instance's outbox carried so far, by flow ID.
func (n *instance) codes(*testing.T) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.sent)
}

// codeFor waits for the SMS of flow in the instance's outbox, which the
// gateway writes in the background, and returns its code.
func (n *instance) codeFor(t *testing.T, flow string) string {
	t.Helper()
	var code string
	if !n.arrived.Await(30*time.Second, func() bool {
		var ok bool
		code, ok = n.codes(t)[flow]
		return ok
	}) {
		t.Fatalf("instance %s: no SMS for flow %s within 30s", n.name, flow)
	}
	return code
}
