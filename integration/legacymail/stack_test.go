package legacymail

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// resetPath is where the gateway forwards a reset: the PHP endpoint.
const resetPath = "/plugins/sms_password_reset/reset.php"

// The example's accounts and the passwords its run script gives them.
const (
	alice         = "alice@example.com"
	bob           = "bob@example.com"
	alicePassword = "alice-old-password"
	bobPassword   = "bob-old-password"
)

// readyLine is what the run script prints once the whole stack serves.
const readyLine = "The legacy mail stack is up."

// The listeners Caddy inherits, as its fd/N network addresses name them:
// os/exec passes ExtraFiles[i] as file descriptor 3+i, bash passes them on.
const (
	gatewayFD = 3
	webmailFD = 4
	adminFD   = 5
)

// stack is one run of examples/legacy-mail/run.
type stack struct {
	state    string // the state directory
	gateway  string // http://127.0.0.1:<port>
	webmail  string // http://127.0.0.1:<port>
	imapAddr string // 127.0.0.1:<port>
	tap      *tap
	client   *http.Client

	cmd    *exec.Cmd
	out    *watchedOutput
	exited chan struct{}

	// clock is the file that sets Dovecot's clock ahead of the real one
	// (DOVECOT_CLOCK), by ahead seconds.
	clock string
	ahead int
}

// nextDovecotSecond moves Dovecot's clock on by a second. Dovecot looks at
// its passwd-file at most once a second of its clock: a file replaced in
// the second of its last lookup goes unseen until a lookup in a later
// second, which a person typing their new password always makes. Moving
// the clock stands in for that wait.
func (s *stack) nextDovecotSecond(t *testing.T) {
	t.Helper()
	s.ahead++
	// Written whole and renamed in, so that Dovecot never reads half a file.
	tmp := s.clock + ".new"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("+%d\n", s.ahead)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.clock); err != nil {
		t.Fatal(err)
	}
}

// startStack runs the example's run script with free ports and waits until
// it says the stack is up and the gateway answers through to PHP. The
// stack stops when t ends.
func startStack(t *testing.T) *stack {
	t.Helper()
	// Not t.TempDir: Dovecot and php-fpm may run as nobody, who must be
	// able to reach the directory, so its parents must be open to all.
	state, err := os.MkdirTemp("", "legacy-mail-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(state); err != nil {
			t.Logf("removing %s: %v", state, err)
		}
	})

	files := make([]*os.File, 3) // as ExtraFiles: gatewayFD, webmailFD, adminFD
	ports := make([]int, 3)
	for i := range files {
		files[i], ports[i] = freeport.File(t)
		defer files[i].Close() // the child has its own copy once started
	}
	imapPort := freeport.Port(t)
	s := &stack{
		state:    state,
		gateway:  fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		webmail:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		imapAddr: fmt.Sprintf("127.0.0.1:%d", imapPort),
		client:   &http.Client{Timeout: 30 * time.Second},
		out:      newWatchedOutput(readyLine),
		exited:   make(chan struct{}),
	}
	s.tap = startTap(t, s.webmail)

	s.clock = filepath.Join(state, "dovecot-clock")
	if err := os.WriteFile(s.clock, []byte("+0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("bash", filepath.Join(root, "examples", "legacy-mail", "run"))
	s.cmd.Dir = root
	s.cmd.Env = append(os.Environ(),
		"LEGACY_MAIL_STATE="+state,
		"DOVECOT_CLOCK="+s.clock,
		"CADDY_BIN="+caddyBin,
		fmt.Sprintf("GATEWAY_PORT=%d", ports[0]),
		fmt.Sprintf("GATEWAY_BIND=fd/%d", gatewayFD),
		fmt.Sprintf("WEBMAIL_PORT=%d", ports[1]),
		fmt.Sprintf("WEBMAIL_BIND=fd/%d", webmailFD),
		fmt.Sprintf("LEGACY_MAIL_ADMIN=fd/%d", adminFD),
		fmt.Sprintf("IMAP_PORT=%d", imapPort),
		// The gateway reaches the webmail through the tap, which keeps a
		// copy of every signed reset it forwards.
		"WEBMAIL_UPSTREAM="+s.tap.addr,
		"XDG_DATA_HOME="+filepath.Join(state, "gateway", "data"),
		"XDG_CONFIG_HOME="+filepath.Join(state, "gateway", "config"),
	)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.ExtraFiles = files
	// Its own process group, so that a script that does not stop in time
	// can be killed with everything it started.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the run script: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	select {
	case <-s.out.seen:
	case <-s.exited:
		t.Fatalf("the run script exited before the stack was up:\n%s\n%s", s.out, s.logs())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run script did not report the stack up within 2 minutes:\n%s\n%s", s.out, s.logs())
	}
	// The script waits for each process's ready line; this shows the whole
	// chain serving: gateway, reverse proxy, php_fastcgi, PHP.
	status, body := s.get(t, s.gateway+"/")
	if status != http.StatusOK || !strings.Contains(body, "Legacy webmail") {
		t.Fatalf("GET %s/ = %d %q, want 200 with the webmail's page:\n%s", s.gateway, status, body, s.logs())
	}
	return s
}

// stop sends the script SIGTERM, as its trap expects, and kills its process
// group if it has not ended within 30 seconds.
func (s *stack) stop(t *testing.T) {
	s.client.CloseIdleConnections()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("the run script did not stop within 30s; killing its process group")
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	if t.Failed() {
		t.Logf("run script output:\n%s\n%s", s.out, s.logs())
	}
}

// logs is the end of every log of the stack.
func (s *stack) logs() string {
	var b strings.Builder
	for _, name := range []string{"caddy.log", "dovecot/dovecot.log", "php-fpm/php-fpm.log", "php-fpm/php-error.log"} {
		data, err := os.ReadFile(filepath.Join(s.state, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// passwd is Dovecot's passwd-file as it is now.
func (s *stack) passwd(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.state, "auth", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusals counts the lines of PHP's error log that give reason for a
// refused reset.
func (s *stack) refusals(t *testing.T, reason string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.state, "php-fpm", "php-error.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "refused a reset: "+reason+"\n")
}

// login logs in over IMAP and opens INBOX, as a mail client would.
func (s *stack) login(user, password string) error {
	return s.loginFrom("127.0.0.1", user, password)
}

// failedLoginFrom is the client address of logins meant to fail. After a
// failed login Dovecot slows down the next ones from the same address for
// a while (its auth penalty); from an address of their own they do not
// slow down the logins that must work.
const failedLoginFrom = "127.0.0.2"

// loginFrom is login from the loopback address ip.
func (s *stack) loginFrom(ip, user, password string) error {
	dialer := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := imapclient.DialInsecure(s.imapAddr, &imapclient.Options{Dialer: dialer})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("selecting INBOX: %w", err)
	}
	return c.Logout().Wait()
}

// answer is one HTTP answer.
type answer struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (a answer) str(key string) string {
	s, _ := a.Body[key].(string)
	return s
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.Status, strings.TrimSpace(a.Raw)) }

// do sends body to url with the headers and decodes a JSON answer.
func (s *stack) do(url string, header http.Header, body []byte) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	raw := readAll(res.Body)
	a := answer{Status: res.StatusCode, Raw: raw}
	_ = json.Unmarshal([]byte(raw), &a.Body)
	return a, nil
}

// post is do that fails the test on a transport error.
func (s *stack) post(t *testing.T, url string, header http.Header, body []byte) answer {
	t.Helper()
	a, err := s.do(url, header, body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return a
}

// api posts a JSON body to one of the gateway's recovery routes.
func (s *stack) api(t *testing.T, route string, body any) answer {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return s.post(t, s.gateway+"/recovery/"+route, nil, b)
}

func (s *stack) get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := s.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, readAll(res.Body)
}

// tokenFor walks the gateway's flow for account up to the reset token:
// start, the code from the outbox, verify.
func (s *stack) tokenFor(t *testing.T, account string) string {
	t.Helper()
	a := s.api(t, "start", map[string]string{"account": account})
	flow := a.str("flow")
	if a.Status != http.StatusAccepted || flow == "" {
		t.Fatalf("start for %s = %v, want 202 with a flow", account, a)
	}
	code := s.codeFor(t, flow)
	a = s.api(t, "verify", map[string]string{"flow": flow, "code": code})
	token := a.str("reset_token")
	if a.Status != http.StatusOK || token == "" {
		t.Fatalf("verify = %v, want 200 with a reset_token", a)
	}
	return token
}

var (
	flowInLink = regexp.MustCompile(`[?&]flow=([A-Za-z0-9_-]+)`)
	codeLine   = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)
)

// codeFor waits for the SMS of flow, which the gateway writes to the
// outbox in the background, and returns its code.
func (s *stack) codeFor(t *testing.T, flow string) string {
	t.Helper()
	path := filepath.Join(s.state, "gateway", "sms-outbox.jsonl")
	written := watchDir(t, filepath.Dir(path)) // before the first look
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code := codeIn(t, path, flow); code != "" {
			return code
		}
		changed, err := written.wait(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the outbox: %v", err)
		}
		if !changed {
			t.Fatalf("no SMS for flow %s in %s within 10s", flow, path)
		}
	}
}

func codeIn(t *testing.T, path, flow string) string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Body string `json:"body"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue // a line being written
		}
		f, c := flowInLink.FindStringSubmatch(line.Body), codeLine.FindStringSubmatch(line.Body)
		if f != nil && c != nil && f[1] == flow {
			return c[1]
		}
	}
	return ""
}

// captured is one request the tap received.
type captured struct {
	header http.Header
	body   []byte
}

// tap sits between the gateway and the webmail: it forwards everything
// and keeps a copy of each signed reset, the way someone who can read the
// traffic behind the gateway could. With hold set it keeps the next reset
// without forwarding it and answers 503, so that a test holds a signed
// reset PHP has never seen.
type tap struct {
	addr  string // host:port
	proxy *httputil.ReverseProxy

	mu     sync.Mutex
	resets []captured
	hold   bool
}

func startTap(t *testing.T, webmail string) *tap {
	t.Helper()
	target, err := url.Parse(webmail)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{proxy: &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}}
	srv := httptest.NewServer(tp)
	t.Cleanup(srv.Close)
	tp.addr = srv.Listener.Addr().String()
	return tp
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if r.URL.Path == resetPath {
		tp.mu.Lock()
		tp.resets = append(tp.resets, captured{header: r.Header.Clone(), body: body})
		hold := tp.hold
		tp.hold = false
		tp.mu.Unlock()
		if hold {
			http.Error(w, "held by the test", http.StatusServiceUnavailable)
			return
		}
	}
	tp.proxy.ServeHTTP(w, r)
}

// holdNext makes the tap keep the next reset instead of forwarding it.
func (tp *tap) holdNext() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.hold = true
}

// captures returns the resets the tap has seen.
func (tp *tap) captures() []captured {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]captured(nil), tp.resets...)
}

// watchedOutput collects a process's output and closes seen once a line
// equal to want has been written.
type watchedOutput struct {
	want string
	seen chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func newWatchedOutput(want string) *watchedOutput {
	return &watchedOutput{want: want, seen: make(chan struct{})}
}

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.done && bytes.Contains(o.buf.Bytes(), []byte(o.want+"\n")) {
		o.done = true
		close(o.seen)
	}
	return len(p), nil
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// readAll drains and closes a response body.
func readAll(r io.ReadCloser) string {
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}
