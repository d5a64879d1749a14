package module

// Browser tests: Debian's Chromium, headless, walks the pages as a person on
// a small phone would, with and without JavaScript, and axe-core checks every
// page for accessibility. They need Chromium (apt-get install chromium) and
// axe-core (AXE_CORE_JS=<path of axe.min.js>); without them they skip, except
// with CI=true, where they fail. Screenshots go to $BROWSER_TEST_OUTPUT
// (default: <temp dir>/caddy-sms-recovery-browser); with
// UPDATE_SCREENSHOTS=1 the four main pages are also copied to
// docs/screenshots for the README.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// axeVersion is the axe-core release the accessibility check is written
// for; .ci/run installs it with npm.
const axeVersion = "4.14.1"

// Phone-sized viewport of the tests.
const (
	viewportWidth  = 360
	viewportHeight = 740
)

// chromium returns the path of Chromium.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "Chromium", "apt-get install chromium", err)
	}
	return path
}

// axeSource returns axe-core's browser bundle, from $AXE_CORE_JS or from
// where `npm install --prefix <user cache dir>/caddy-sms-recovery/axe-core`
// puts it.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		cache, err := os.UserCacheDir()
		if err == nil {
			path = filepath.Join(cache, "caddy-sms-recovery", "axe-core", "node_modules", "axe-core", "axe.min.js")
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		testenv.Missing(t, "axe-core "+axeVersion, "npm install --prefix <user cache dir>/caddy-sms-recovery/axe-core axe-core@"+axeVersion+
			" (as .ci/run does), or set AXE_CORE_JS to its axe.min.js", err)
	}
	return string(b)
}

// outputDir returns the folder for screenshots, made if needed.
func outputDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BROWSER_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "caddy-sms-recovery-browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tab is one headless Chromium with a fresh profile and a phone-sized
// viewport, open on one tab.
type tab struct {
	t   *testing.T
	ctx context.Context
	out string
}

// newTab starts Chromium for the test; it stops when the test ends.
func newTab(t *testing.T, script bool) *tab {
	t.Helper()
	exe := chromium(t)
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
		chromedp.WindowSize(viewportWidth, viewportHeight),
	)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelBrowser)
	// The first run starts the browser; it must not carry the timeout.
	if err := chromedp.Do(browserCtx); err != nil {
		testenv.Missing(t, "a Chromium that starts", "apt-get install chromium; the error says why this one did not", err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, out: outputDir(t)}
	tb.do(
		chromedp.EmulateViewport(viewportWidth, viewportHeight, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !script}),
	)
	return tb
}

// call makes an action of one protocol command.
func call[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatal(err)
	}
}

// open loads u and returns the status of the page.
func (tb *tab) open(u string) int64 {
	tb.t.Helper()
	resp, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(u))
	if err != nil {
		tb.t.Fatalf("opening %s: %v", u, err)
	}
	return resp.Status
}

// submit clicks the button of the form that posts to route, as a finger
// would, and returns the status of the page that loads.
func (tb *tab) submit(route string) int64 {
	tb.t.Helper()
	resp, err := chromedp.RunResponse(tb.ctx, chromedp.Click(chromedp.CSS(`form[action$="`+route+`"] button`)))
	if err != nil {
		tb.t.Fatalf("submitting %s: %v", route, err)
	}
	return resp.Status
}

// typeInto types s into the field with id, as a keyboard would.
func (tb *tab) typeInto(id, s string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.ID(id), s))
}

// heading returns the page's h1, read through the DOM, which works with
// scripts off.
func (tb *tab) heading() string {
	tb.t.Helper()
	html, err := chromedp.Run(tb.ctx, chromedp.OuterHTML(chromedp.CSS("h1")))
	if err != nil {
		tb.t.Fatal(err)
	}
	return strings.TrimSpace(html[strings.Index(html, ">")+1 : strings.LastIndex(html, "<")])
}

// location returns the address of the page.
func (tb *tab) location() *url.URL {
	tb.t.Helper()
	loc, err := chromedp.Run(tb.ctx, chromedp.Location())
	if err != nil {
		tb.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tb.t.Fatal(err)
	}
	return u
}

// expect fails unless the page has status and its h1 is heading.
func (tb *tab) expect(status, wantStatus int64, heading string) {
	tb.t.Helper()
	if status != wantStatus {
		tb.t.Fatalf("page %s: status %d, want %d", tb.location(), status, wantStatus)
	}
	if got := tb.heading(); got != heading {
		tb.t.Fatalf("page %s: heading %q, want %q", tb.location(), got, heading)
	}
}

// screenshot saves the whole page as <name>.png in the output folder and
// returns its path.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatal(err)
	}
	path := filepath.Join(tb.out, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	return path
}

// browserFlow walks the whole flow in tb and returns the screenshots of the
// four main pages.
func browserFlow(t *testing.T, tb *tab, e *pageEnv, prefix string, viaSMSLink bool) map[string]string {
	shots := map[string]string{}
	tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
	shots["account"] = tb.screenshot(prefix + "account")

	tb.typeInto("account", pageTestAccount)
	tb.expect(tb.submit("/start"), 200, "Check your phone")
	flow := tb.location().Query().Get("flow")
	code := e.code(flow, 1)
	if viaSMSLink {
		// The person taps the link in the SMS. It names public_url, which
		// stands for the test server here: the browser opens its path there.
		link, err := url.Parse(regexp.MustCompile(`https?://\S+`).FindString(e.messages()[0].Body))
		if err != nil || link.Host != "mail.example.com" || !strings.HasPrefix(link.Path, "/recovery/") {
			t.Fatalf("SMS link %v (%v), want one to public_url's /recovery/", link, err)
		}
		tb.expect(tb.open(e.srv.URL+link.RequestURI()), 200, "Check your phone")
	}
	shots["code"] = tb.screenshot(prefix + "code")

	tb.typeInto("code", code)
	tb.expect(tb.submit("/verify"), 200, "Choose a new password")
	shots["password"] = tb.screenshot(prefix + "password")

	tb.typeInto("password", pageTestPassword)
	tb.typeInto("password-again", pageTestPassword)
	tb.expect(tb.submit("/reset"), 200, "Your password has been changed")
	shots["done"] = tb.screenshot(prefix + "done")

	got := e.upstream.got()
	wantBody := url.Values{"password": {pageTestPassword}}.Encode()
	if len(got) != 1 || got[0].Account != pageTestAccount || got[0].Body != wantBody {
		t.Fatalf("upstream got %+v, want one signed reset for %s", got, pageTestAccount)
	}
	return shots
}

func TestBrowserFlow(t *testing.T) {
	tb := newTab(t, true)
	e := newPageEnv(t, nil)
	shots := browserFlow(t, tb, e, "flow-", false)

	// The page fits the phone: nothing runs off the side.
	fits, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
	if err != nil || !fits {
		t.Errorf("the page is wider than %d px (%v)", viewportWidth, err)
	}
	// The stylesheet loaded under the CSP.
	bg, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".button")).backgroundColor`))
	if err != nil || bg != "rgb(26, 86, 219)" {
		t.Errorf("button background %q (%v): the stylesheet did not apply", bg, err)
	}

	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		docs := filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, path := range shots {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(docs, name+".png"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("screenshots in %s", tb.out)
}

func TestBrowserFlowWithoutJavaScript(t *testing.T) {
	tb := newTab(t, false)
	// Scripts are really off: this page's script would change its title.
	tb.open(`data:text/html,<title>off</title><script>document.title="on"</script>`)
	title, err := chromedp.Run(tb.ctx, chromedp.Title())
	if err != nil || title != "off" {
		t.Fatalf("title %q (%v): scripts still run", title, err)
	}
	e := newPageEnv(t, nil)
	browserFlow(t, tb, e, "nojs-", true)
}

// axeViolation is what the test keeps of an axe-core violation.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkAccessibility runs axe-core on the page in light and dark mode and
// fails on any serious or critical violation.
func (tb *tab) checkAccessibility(axe, name string) {
	tb.t.Helper()
	tb.screenshot("a11y-" + name)
	for _, scheme := range []string{"light", "dark"} {
		tb.do(call(emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		}))
		loaded, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`typeof axe === "object"`))
		if err != nil {
			tb.t.Fatal(err)
		}
		if !loaded {
			tb.do(chromedp.Evaluate[chromedp.Void](axe))
		}
		vs, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
			r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))})))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			tb.t.Fatalf("running axe-core on %s: %v", name, err)
		}
		for _, v := range vs {
			msg := fmt.Sprintf("%s (%s): %s [%s] %s", name, scheme, v.ID, v.Impact, v.Help)
			if v.Impact == "serious" || v.Impact == "critical" {
				tb.t.Errorf("%s at %v", msg, v.Nodes)
			} else {
				tb.t.Logf("%s at %v", msg, v.Nodes)
			}
		}
	}
	tb.do(call(emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}))
}

// TestBrowserAccessibility brings the browser to every page and state the
// gateway shows and checks each with axe-core.
func TestBrowserAccessibility(t *testing.T) {
	axe := axeSource(t)
	tb := newTab(t, true)
	e := newPageEnv(t, func(h *Handler) {
		h.Limits = map[string]Limit{"start_account": {Events: 2, Window: caddy.Duration(time.Hour)}}
		h.Lockout = &Threshold{Failures: 2, Window: caddy.Duration(time.Hour), Duration: caddy.Duration(30 * time.Minute)}
	})
	version, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](axe+`;axe.version`))
	if err != nil {
		t.Fatalf("loading axe-core: %v", err)
	}
	t.Logf("axe-core %s", version)

	tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
	tb.checkAccessibility(axe, "account")
	tb.typeInto("account", "   ")
	tb.expect(tb.submit("/start"), 400, "Reset your Example Mail password")
	tb.checkAccessibility(axe, "account-error")

	tb.typeInto("account", pageTestAccount)
	tb.expect(tb.submit("/start"), 200, "Check your phone")
	tb.checkAccessibility(axe, "code")
	flow := tb.location().Query().Get("flow")
	code := e.code(flow, 1)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	tb.typeInto("code", wrong)
	tb.expect(tb.submit("/verify"), 400, "Check your phone")
	tb.checkAccessibility(axe, "code-error")
	tb.expect(tb.submit("/resend"), 429, "Check your phone")
	tb.checkAccessibility(axe, "code-too-early")

	tb.typeInto("code", code)
	tb.expect(tb.submit("/verify"), 200, "Choose a new password")
	tb.checkAccessibility(axe, "password")
	tb.typeInto("password", pageTestPassword)
	tb.typeInto("password-again", pageTestPassword+"!")
	tb.expect(tb.submit("/reset"), 400, "Choose a new password")
	tb.checkAccessibility(axe, "password-error")

	e.upstream.answer(503, nil)
	tb.typeInto("password", pageTestPassword)
	tb.typeInto("password-again", pageTestPassword)
	tb.expect(tb.submit("/reset"), 502, "The mail service is not answering")
	tb.checkAccessibility(axe, "upstream")

	e.upstream.answer(0, nil)
	tb.expect(tb.open(e.url("/?step=password")), 200, "Choose a new password")
	tb.typeInto("password", pageTestPassword)
	tb.typeInto("password-again", pageTestPassword)
	tb.expect(tb.submit("/reset"), 200, "Your password has been changed")
	tb.checkAccessibility(axe, "done")

	tb.expect(tb.open(e.url("/?step=password")), 401, "Time ran out")
	tb.checkAccessibility(axe, "token")

	tb.expect(tb.open(e.url("/?flow=AAAAAAAAAAAAAAAAAAAAAA")), 200, "Check your phone")
	tb.typeInto("code", "123456")
	tb.expect(tb.submit("/verify"), 410, "This code has expired")
	tb.checkAccessibility(axe, "expired")

	// An unknown account behaves like any other: two starts, then a wait.
	for range 2 {
		tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
		tb.typeInto("account", "carol@example.com")
		tb.expect(tb.submit("/start"), 200, "Check your phone")
	}
	tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
	tb.typeInto("account", "carol@example.com")
	tb.expect(tb.submit("/start"), 429, "Please wait a moment")
	tb.checkAccessibility(axe, "rate-limited")

	tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
	tb.typeInto("account", "dave@example.com")
	tb.expect(tb.submit("/start"), 200, "Check your phone")
	tb.typeInto("code", "123456")
	tb.expect(tb.submit("/verify"), 400, "Check your phone")
	tb.typeInto("code", "123456")
	tb.expect(tb.submit("/verify"), 423, "Recovery is paused for this account")
	tb.checkAccessibility(axe, "locked")

	tb.expect(tb.open(e.url("/")), 200, "Reset your Example Mail password")
	tb.do(call(network.ClearBrowserCookies, cdp.Empty{}))
	tb.typeInto("account", pageTestAccount)
	tb.expect(tb.submit("/start"), 403, "This page has expired")
	tb.checkAccessibility(axe, "csrf")

	t.Logf("screenshots in %s", tb.out)
}
