package legacymail

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// roundcubeReady is what examples/roundcube/run prints once the stack serves.
const roundcubeReady = "The Roundcube stack is up."

// roundcubeHome is where Debian's roundcube-core installs Roundcube, and
// where the run script looks for it.
const roundcubeHome = "/var/lib/roundcube"

// newRoundcubePassword is the password alice chooses in the browser: 15
// characters or more, as the verifier's policy wants.
const newRoundcubePassword = "correct horse battery staple"

// The browser window of the Roundcube test: a laptop's, where Roundcube
// shows its login form as most people see it.
const (
	roundcubeWidth  = 1024
	roundcubeHeight = 720
)

// TestRoundcubeForgotPassword runs examples/roundcube/run and walks it in
// Chromium as a person who forgot their password: a login that fails, the
// "Forgot password?" link the plugin adds under Roundcube's login form, the
// gateway's pages with the code read from the outbox, a new password, then
// Roundcube's inbox with it; and the old password no longer logs in.
// With UPDATE_SCREENSHOTS=1 the login page with the link is saved as
// docs/screenshots/roundcube-login.png.
func TestRoundcubeForgotPassword(t *testing.T) {
	needRoundcube(t)
	s := startRoundcube(t)
	b := newRoundcubeBrowser(t, s)

	// The login page, with the plugin's link and no account on it yet.
	b.open(s.site + "/")
	if got := b.attr("#rcmforgotpassword", "href"); got != "/recovery/" {
		t.Fatalf("the link on a fresh login page goes to %q, want /recovery/", got)
	}
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		b.screenshot(filepath.Join(root, "docs", "screenshots", "roundcube-login.png"))
	}

	// The link follows the user name as it is typed.
	b.typeInto("#rcmloginuser", alice)
	want := "/recovery/?account=" + url.QueryEscape(alice)
	if got := b.attr("#rcmforgotpassword", "href"); got != want {
		t.Fatalf("with %s typed the link goes to %q, want %q", alice, got, want)
	}

	// A wrong password: Roundcube answers 401 and shows its form again,
	// and the link carries the name of the failed login.
	b.typeInto("#rcmloginpwd", "not-alices-password")
	if status := b.submit("#rcmloginsubmit"); status != http.StatusUnauthorized {
		t.Fatalf("a login with a wrong password: status %d, want 401\n%s", status, s.logs())
	}
	b.waitVisible("#rcmloginuser")
	if got := b.attr("#rcmforgotpassword", "href"); got != want {
		t.Fatalf("after the failed login the link goes to %q, want %q", got, want)
	}

	// The link leads to the gateway's first page, with the account filled in.
	if status := b.click("#rcmforgotpassword"); status != http.StatusOK {
		t.Fatalf("following the link: status %d, want 200", status)
	}
	if got := b.location().Path; got != "/recovery/" {
		t.Fatalf("the link led to %s, want /recovery/", got)
	}
	if got := b.value("#account"); got != alice {
		t.Fatalf("the account field holds %q, want %q", got, alice)
	}
	if status := b.submit(`form[action$="/start"] button`); status != http.StatusOK {
		t.Fatalf("asking for a code: status %d, want 200", status)
	}
	flow := b.location().Query().Get("flow")
	if flow == "" {
		t.Fatalf("asking for a code led to %s, want a page of the flow", b.location())
	}
	b.typeInto("#code", s.codeFor(t, flow))
	if status := b.submit(`form[action$="/verify"] button`); status != http.StatusOK {
		t.Fatalf("entering the code: status %d, want 200", status)
	}

	// A password the verifier's policy refuses (the account's name) comes
	// back as the page's 400 and changes nothing; the same page then takes
	// a good one.
	before, err := os.ReadFile(filepath.Join(s.state, "auth", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	b.typeInto("#password", alice)
	b.typeInto("#password-again", alice)
	if status := b.submit(`form[action$="/reset"] button`); status != http.StatusBadRequest {
		t.Fatalf("the account's name as its password: status %d, want 400\n%s", status, s.logs())
	}
	if after, err := os.ReadFile(filepath.Join(s.state, "auth", "passwd")); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a refused password changed the passwd-file (%v)", err)
	}
	b.clear("#password")
	b.clear("#password-again")
	b.typeInto("#password", newRoundcubePassword)
	b.typeInto("#password-again", newRoundcubePassword)
	if status := b.submit(`form[action$="/reset"] button`); status != http.StatusOK {
		t.Fatalf("the new password: status %d, want 200\n%s", status, s.logs())
	}
	if got := b.heading(); got != "Your password has been changed" {
		t.Fatalf("after the new password the page says %q", got)
	}
	// Dovecot notices the new passwd-file at its next lookup in a later
	// second of its clock, as a person typing their password gives it.
	s.nextDovecotSecond(t)

	// The new password opens Roundcube's inbox.
	b.open(s.site + "/")
	b.typeInto("#rcmloginuser", alice)
	b.typeInto("#rcmloginpwd", newRoundcubePassword)
	if status := b.submit("#rcmloginsubmit"); status != http.StatusOK {
		t.Fatalf("a login with the new password: status %d, want 200\n%s", status, s.logs())
	}
	b.waitVisible("#messagelist")
	if got := b.location().Query().Get("_task"); got != "mail" {
		t.Fatalf("after the login Roundcube shows %s, want its mail task", b.location())
	}
	if got := b.textContent("#mailboxlist li.inbox.selected a"); got != "Inbox" {
		t.Fatalf("Roundcube's open folder is %q, want the Inbox", got)
	}

	// The old password no longer does, in a browser that starts afresh.
	b.do(call(network.ClearBrowserCookies, cdp.Empty{}))
	b.open(s.site + "/")
	b.typeInto("#rcmloginuser", alice)
	b.typeInto("#rcmloginpwd", alicePassword)
	if status := b.submit("#rcmloginsubmit"); status != http.StatusUnauthorized {
		t.Fatalf("a login with the old password: status %d, want 401", status)
	}
	b.waitVisible("#rcmloginuser")

	// The verifier sits on the gateway's own reset path, but a request
	// there reaches it only through the gateway: one that carries a
	// signature of its own and no valid token is the gateway's to refuse,
	// and the passwd-file stays as it was.
	before, err = os.ReadFile(filepath.Join(s.state, "auth", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.site+"/recovery/reset",
		strings.NewReader(`{"reset_token":"forged","password":"an attacker's long password"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Recovery-Account", alice)
	req.Header.Set("Signature-Input", `recovery=("@method" "@path");created=1;keyid="gw1";alg="hmac-sha256"`)
	req.Header.Set("Signature", "recovery=:AAAA:")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's refusal, not the verifier's invalid_signature.
	if body := readAll(res.Body); res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error":"invalid_token"`) {
		t.Errorf("a reset with a forged token and signature: %d %s, want the gateway's 401 invalid_token", res.StatusCode, body)
	}
	if after, err := os.ReadFile(filepath.Join(s.state, "auth", "passwd")); err != nil || !bytes.Equal(after, before) {
		t.Errorf("a forged reset changed the passwd-file (%v)", err)
	}
}

// needRoundcube skips the test when the Roundcube stack or Chromium is
// missing, or fails it when CI=true.
func needRoundcube(t *testing.T) {
	t.Helper()
	needStack(t)
	if _, err := os.Stat(filepath.Join(roundcubeHome, "program", "include", "iniset.php")); err != nil {
		testenv.Missing(t, "Debian's Roundcube", "echo 'roundcube-core roundcube/dbconfig-install boolean false' | debconf-set-selections; "+
			"DEBIAN_FRONTEND=noninteractive apt-get install --no-install-recommends roundcube-core roundcube-sqlite3", err)
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		testenv.Missing(t, "Chromium", "apt-get install chromium", err)
	}
}

// roundcubeStack is one run of examples/roundcube/run.
type roundcubeStack struct {
	state string // the state directory
	site  string // http://127.0.0.1:<port>

	cmd    *exec.Cmd
	out    *watchedOutput
	exited chan struct{}

	// clock is the file that sets Dovecot's clock ahead of the real one
	// (DOVECOT_CLOCK), by ahead seconds.
	clock string
	ahead int
}

// startRoundcube runs the example's run script with free ports and waits
// until it says the stack is up. The stack stops when t ends.
func startRoundcube(t *testing.T) *roundcubeStack {
	t.Helper()
	// Not t.TempDir: Dovecot and php-fpm may run as nobody, who must be
	// able to reach the directory, so its parents must be open to all.
	state, err := os.MkdirTemp("", "roundcube-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(state); err != nil {
			t.Logf("removing %s: %v", state, err)
		}
	})
	site, sitePort := freeport.File(t)
	defer site.Close() // the child has its own copy once started
	admin, _ := freeport.File(t)
	defer admin.Close()
	s := &roundcubeStack{
		state:  state,
		site:   fmt.Sprintf("http://127.0.0.1:%d", sitePort),
		out:    newWatchedOutput(roundcubeReady),
		exited: make(chan struct{}),
		clock:  filepath.Join(state, "dovecot-clock"),
	}
	if err := os.WriteFile(s.clock, []byte("+0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("bash", filepath.Join(root, "examples", "roundcube", "run"))
	s.cmd.Dir = root
	s.cmd.Env = append(os.Environ(),
		"ROUNDCUBE_STATE="+state,
		"ROUNDCUBE_HOME="+roundcubeHome,
		"DOVECOT_CLOCK="+s.clock,
		"CADDY_BIN="+caddyBin,
		fmt.Sprintf("ROUNDCUBE_PORT=%d", sitePort),
		// os/exec passes ExtraFiles[i] as descriptor 3+i; Caddy binds them.
		"ROUNDCUBE_BIND=fd/3",
		"ROUNDCUBE_ADMIN=fd/4",
		fmt.Sprintf("IMAP_PORT=%d", freeport.Port(t)),
		"XDG_DATA_HOME="+filepath.Join(state, "gateway", "data"),
		"XDG_CONFIG_HOME="+filepath.Join(state, "gateway", "config"),
	)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.ExtraFiles = []*os.File{site, admin}
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
	return s
}

// stop sends the script SIGTERM, as its trap expects, and kills its process
// group if it has not ended within 30 seconds.
func (s *roundcubeStack) stop(t *testing.T) {
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
func (s *roundcubeStack) logs() string {
	var b strings.Builder
	logs := []string{"caddy.log", "dovecot/dovecot.log", "php-fpm/php-fpm.log", "php-fpm/php-error.log"}
	more, _ := filepath.Glob(filepath.Join(s.state, "roundcube", "logs", "*"))
	for _, m := range more {
		logs = append(logs, strings.TrimPrefix(m, s.state+"/"))
	}
	for _, name := range logs {
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

// nextDovecotSecond moves Dovecot's clock on by a second (see
// stack.nextDovecotSecond).
func (s *roundcubeStack) nextDovecotSecond(t *testing.T) {
	t.Helper()
	s.ahead++
	tmp := s.clock + ".new"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("+%d\n", s.ahead)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.clock); err != nil {
		t.Fatal(err)
	}
}

// codeFor waits for the SMS of flow in the outbox and returns its code.
func (s *roundcubeStack) codeFor(t *testing.T, flow string) string {
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

// roundcubeBrowser is a headless Chromium with a fresh profile, on one tab.
type roundcubeBrowser struct {
	t   *testing.T
	s   *roundcubeStack
	ctx context.Context
}

// newRoundcubeBrowser starts Chromium for the test; it stops when the test
// ends.
func newRoundcubeBrowser(t *testing.T, s *roundcubeStack) *roundcubeBrowser {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "Chromium", "apt-get install chromium", err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(roundcubeWidth, roundcubeHeight),
	)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelBrowser)
	// The first run starts the browser; it must not carry the timeout.
	if err := chromedp.Do(browserCtx); err != nil {
		testenv.Missing(t, "a Chromium that starts", "apt-get install chromium; the error says why this one did not", err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	t.Cleanup(cancel)
	b := &roundcubeBrowser{t: t, s: s, ctx: ctx}
	b.do(chromedp.EmulateViewport(roundcubeWidth, roundcubeHeight))
	return b
}

// call makes an action of one protocol command.
func call[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

func (b *roundcubeBrowser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%v\n%s", err, b.s.logs())
	}
}

// open loads u and fails unless it answers 200.
func (b *roundcubeBrowser) open(u string) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.t.Fatalf("opening %s: %v", u, err)
	}
	if resp.Status != http.StatusOK {
		b.t.Fatalf("opening %s: status %d, want 200\n%s", u, resp.Status, b.s.logs())
	}
}

// submit clicks the button sel, as a finger would, and returns the status
// of the page that loads.
func (b *roundcubeBrowser) submit(sel string) int64 {
	b.t.Helper()
	return b.click(sel)
}

// click clicks sel and returns the status of the page that loads.
func (b *roundcubeBrowser) click(sel string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v\n%s", sel, err, b.s.logs())
	}
	return resp.Status
}

// typeInto types s into the field sel, as a keyboard would.
func (b *roundcubeBrowser) typeInto(sel, s string) {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.CSS(sel), s))
}

// clear empties the field sel.
func (b *roundcubeBrowser) clear(sel string) {
	b.t.Helper()
	b.do(chromedp.Clear(chromedp.CSS(sel)))
}

// waitVisible waits until sel is on the page and visible.
func (b *roundcubeBrowser) waitVisible(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// attr returns the attribute name of sel, read in the page itself rather
// than from chromedp's copy of the DOM, which follows the page's scripts
// only as their events arrive.
func (b *roundcubeBrowser) attr(sel, name string) string {
	b.t.Helper()
	js := fmt.Sprintf(`document.querySelector(%q).getAttribute(%q)`, sel, name)
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("reading %s of %s: %v", name, sel, err)
	}
	return v
}

// value returns what the field sel holds.
func (b *roundcubeBrowser) value(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return v
}

// text returns the text of sel as shown.
func (b *roundcubeBrowser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// textContent returns the text of sel, shown or not (a narrow window hides
// Roundcube's folder list).
func (b *roundcubeBrowser) textContent(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// heading returns the page's h1.
func (b *roundcubeBrowser) heading() string {
	b.t.Helper()
	return b.text("h1")
}

// location returns the address of the page.
func (b *roundcubeBrowser) location() *url.URL {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// screenshot saves the window as a PNG at path.
func (b *roundcubeBrowser) screenshot(path string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s", path)
}
