package integration

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
)

// kannel is a Kannel the test started from Debian's packages: bearerbox,
// smsbox and, as its SMSC, fakesmsc, which prints every message it gets.
// Their output is read as it comes.
type kannel struct {
	t       *testing.T
	sendsms string // the URL of smsbox's sendsms

	mu    sync.Mutex
	lines map[string][]string // by process
	grew  *wake.Signal        // broadcast at each line
}

// kannelBinary finds one of Kannel's programs: Debian puts the boxes in
// /usr/sbin and fakesmsc (kannel-extras) in /usr/lib/kannel/test, and
// neither is on every PATH.
func kannelBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/lib/kannel/test"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.Missing(t, "Kannel's "+name+", which this test starts itself", "apt-get install kannel kannel-extras", nil)
	return ""
}

// startKannel starts bearerbox with a fake SMSC, fakesmsc connected to it
// and smsbox with a sendsms user gateway/password, on free ports, each
// waited for by what it prints when ready. They are killed when t ends,
// or when the test process dies.
func startKannel(t *testing.T, password string) *kannel {
	t.Helper()
	bearerbox, smsbox, fakesmsc := kannelBinary(t, "bearerbox"), kannelBinary(t, "smsbox"), kannelBinary(t, "fakesmsc")
	ports, err := freeport.Ports(4)
	if err != nil {
		t.Fatal(err)
	}
	admin, boxes, smsc, sendsms := ports[0], ports[1], ports[2], ports[3]
	conf := filepath.Join(t.TempDir(), "kannel.conf")
	// max-messages and concatenation: a code message takes two SMS.
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`group = core
admin-port = %d
admin-interface = 127.0.0.1
admin-password = "%s"
smsbox-port = %d
smsbox-interface = 127.0.0.1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = %d
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = %d
sendsms-port = %d
sendsms-interface = 127.0.0.1

group = sendsms-user
username = gateway
password = "%s"
max-messages = 3
concatenation = true
`, admin, randomHex(t), boxes, smsc, boxes, sendsms, password)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	k := &kannel{t: t, sendsms: fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms", sendsms), lines: map[string][]string{}, grew: wake.New()}
	t.Cleanup(k.showOnFailure)
	k.run("bearerbox", bearerbox, "-v", "1", conf)
	k.await("bearerbox", "Start-up done, entering mainloop")
	// -m 0: it sends no message of its own, and prints what it gets.
	k.run("fakesmsc", fakesmsc, "-H", "127.0.0.1", "-r", strconv.Itoa(smsc), "-m", "0", "0 0 text unused")
	k.await("bearerbox", "Fakesmsc client connected")
	k.run("smsbox", smsbox, "-v", "1", conf)
	k.await("smsbox", "Connected to bearerbox")
	return k
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// run starts one of Kannel's programs, reading its output into k.lines.
func (k *kannel) run(name, path string, args ...string) {
	k.t.Helper()
	cmd := exec.Command(path, args...)
	r, w, err := os.Pipe()
	if err != nil {
		k.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Killed with the test process too, should it die before its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		k.t.Fatalf("starting %s: %v", name, err)
	}
	w.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			k.mu.Lock()
			k.lines[name] = append(k.lines[name], sc.Text())
			k.mu.Unlock()
			k.grew.Broadcast()
		}
	}()
	k.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-read
		r.Close()
	})
}

// await waits for a line of name's output that holds s, woken by each line.
func (k *kannel) await(name, s string) {
	k.t.Helper()
	if !k.grew.Await(30*time.Second, func() bool { return k.find(name, func(l string) bool { return strings.Contains(l, s) }) }) {
		k.t.Fatalf("%s did not print %q within 30s", name, s)
	}
}

func (k *kannel) find(name string, match func(string) bool) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range k.lines[name] {
		if match(l) {
			return true
		}
	}
	return false
}

func (k *kannel) showOnFailure() {
	if !k.t.Failed() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, lines := range k.lines {
		k.t.Logf("%s's last lines:\n%s", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

// fakesmscMessage matches what fakesmsc prints of a message it gets: the
// sender, the recipient and the message in its wire format ("text <text>",
// "data <url-encoded>" or, a part of a long one, "udh <udh> data <...>").
var fakesmscMessage = regexp.MustCompile(`Got message \d+: <(\S+) (\S+) (.*)>$`)

// received returns the text that fakesmsc got for to, its parts joined in
// the order they came.
func (k *kannel) received(to string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b strings.Builder
	for _, l := range k.lines["fakesmsc"] {
		m := fakesmscMessage.FindStringSubmatch(l)
		if m == nil || m[2] != to {
			continue
		}
		fields := strings.Fields(m[3])
		switch {
		case len(fields) >= 1 && fields[0] == "text":
			b.WriteString(strings.TrimPrefix(m[3], "text "))
		case len(fields) == 4 && fields[0] == "udh" && fields[2] == "data", len(fields) == 2 && fields[0] == "data":
			text, err := url.QueryUnescape(fields[len(fields)-1])
			if err != nil {
				k.t.Fatalf("fakesmsc printed %q: %v", l, err)
			}
			b.WriteString(text)
		}
	}
	return b.String()
}

// awaitText waits until the text fakesmsc got for to holds want, and
// returns it.
func (k *kannel) awaitText(to, want string) string {
	k.t.Helper()
	var text string
	if !k.grew.Await(60*time.Second, func() bool { text = k.received(to); return strings.Contains(text, want) }) {
		k.t.Fatalf("fakesmsc got no message for %s holding %q within 60s; it got %q", to, want, text)
	}
	return text
}

func kannelSMS(sendsms string) string {
	return `sms http ` + sendsms + ` {
			method GET
			form username gateway
			form password {env.KANNEL_TEST_PASSWORD}
			form from ExampleMail
			form to {{.To}}
			form text {{.Text}}
			form dlr-mask 27
			form dlr-url {{.ReportURL}}
			reports kannel
		}`
}

// kannelBirdSecret is a made-up Bird webhook signing secret.
var kannelBirdSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5b}, 32))

// TestKannelEndToEnd sends a code through a real Kannel: the gateway's
// sms http sender asks smsbox's sendsms, bearerbox hands the message to
// fakesmsc, and the code fakesmsc prints verifies. The fake SMSC then
// reports the message accepted and delivered, and Kannel calls the
// signed dlr-url the sender gave it: the gateway counts both. A forged
// report and a Bird webhook, made up and signed, take the same road.
func TestKannelEndToEnd(t *testing.T) {
	// A password with characters that a form must encode.
	const password = `k&nnel=Pa55 "word"`
	k := startKannel(t, password)
	t.Setenv("KANNEL_TEST_PASSWORD", password)
	const siteName = "Kannel Mail"
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr, SiteName: siteName, SMS: kannelSMS(k.sendsms),
		Extra: "delivery_reports {\n\t\t\tbird_secret " + kannelBirdSecret + "\n\t\t}"}
	c := start(t, s)

	series := func(provider, country, status string) string {
		return fmt.Sprintf(`caddy_sms_recovery_sms_delivery_reports_total{country=%q,provider=%q,site=%q,status=%q}`, country, provider, siteName, status)
	}
	forgedSeries := fmt.Sprintf(`caddy_sms_recovery_sms_delivery_reports_refused_total{provider="kannel",reason="forged",site=%q}`, siteName)
	m0 := metrics(t)
	delivered0, accepted0 := metricValue(t, m0, series("kannel", "NL", "delivered")), metricValue(t, m0, series("kannel", "NL", "accepted"))
	forged0 := metricValue(t, m0, forgedSeries)

	flow := c.startFlow(alice)
	text := k.awaitText(phoneNL, "\n@localhost #") // the last line is in the last part
	code := codeLine.FindStringSubmatch(text)
	if code == nil || !strings.HasPrefix(text, siteName+" password reset code: "+code[1]) || !strings.Contains(text, "?flow="+flow+"\n") {
		t.Fatalf("fakesmsc got %q", text)
	}
	if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code[1])); a.Status != http.StatusOK {
		t.Fatalf("verify with the code fakesmsc got: %d %s", a.Status, a.Raw)
	}

	// The fake SMSC acknowledges the message (DLR 8) and reports it
	// delivered (DLR 1); smsbox calls the dlr-url for each.
	if !reported.Await(60*time.Second, func() bool {
		m := metrics(t)
		return metricValue(t, m, series("kannel", "NL", "delivered"))-delivered0 >= 1 &&
			metricValue(t, m, series("kannel", "NL", "accepted"))-accepted0 >= 1
	}) {
		m := metrics(t)
		t.Fatalf("within 60s of the SMS, delivered rose by %v and accepted by %v, want 1 each",
			metricValue(t, m, series("kannel", "NL", "delivered"))-delivered0, metricValue(t, m, series("kannel", "NL", "accepted"))-accepted0)
	}

	// A report nobody signed changes nothing but the count of forged ones.
	res, err := http.Get(gateway + "/recovery/sms-report/kannel?c=NL&r=0123456789ab&t=AAAAAAAAAAAAAAAAAAAAAA&status=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	m := metrics(t)
	if res.StatusCode != http.StatusForbidden || metricValue(t, m, forgedSeries)-forged0 != 1 {
		t.Errorf("a forged report: %d, forged count rose by %v; want 403 and 1", res.StatusCode, metricValue(t, m, forgedSeries)-forged0)
	}
	if d := metricValue(t, m, series("kannel", "NL", "delivered")) - delivered0; d != 1 {
		t.Errorf("delivered rose by %v with the forged report, want 1", d)
	}

	// Bird's webhook, signed the Standard Webhooks way with the secret of
	// delivery_reports.
	bird0 := metricValue(t, m, series("bird", "DE", "failed"))
	body := `{"type":"sms.failed","timestamp":"2026-12-07T10:00:00Z","data":{"sms_id":"1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",` +
		`"to":"+4915123456789","from":"ExampleMail","error":{"code":"unreachable","message":"handset unreachable"},"metadata":null,"tags":null}}`
	req, err := http.NewRequest(http.MethodPost, gateway+"/recovery/sms-report/bird", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	signBird(t, req.Header, kannelBirdSecret, body)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if d := metricValue(t, metrics(t), series("bird", "DE", "failed")) - bird0; res.StatusCode != http.StatusNoContent || d != 1 {
		t.Errorf("a signed Bird webhook: %d, failed reports for DE rose by %v; want 204 and 1", res.StatusCode, d)
	}
}

// signBird signs a webhook delivery of body as Bird does: Standard
// Webhooks, HMAC-SHA256 of "<id>.<timestamp>.<body>".
func signBird(t *testing.T, h http.Header, secret, body string) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	id, ts := "msg_"+randomHex(t), strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	h.Set("Content-Type", "application/json")
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}
