package instances

import (
	"sync"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

// slot names one of the instances of a test.
type slot struct {
	name string
}

// The two slots.
var (
	slotA = slot{name: "A"}
	slotB = slot{name: "B"}
)

// The listeners an instance inherits, as Caddy's fd/N network addresses
// name them: os/exec passes ExtraFiles[i] as file descriptor 3+i.
const (
	httpFD  = 3
	adminFD = 4
)

// Test accounts and their phones, the directory of every instance.
const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.com"

	phones = `{"alice@example.com": "+31612345678", "bob@example.com": "+4915123456789", "carol@example.com": "+31687654321"}`
)

// deployment is what the instances of one test share: the secret, the
// forward key, the phone directory, the Redis prefix and the upstream.
type deployment struct {
	secret   string // base64
	hmacKey  []byte
	phones   string // path of the directory file
	prefix   string
	upstream *upstream
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	secret := make([]byte, 32)
	key := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "phones.json")
	if err := os.WriteFile(path, []byte(phones), 0o600); err != nil {
		t.Fatal(err)
	}
	return &deployment{
		secret:   base64.StdEncoding.EncodeToString(secret),
		hmacKey:  key,
		phones:   path,
		prefix:   newPrefix(t),
		upstream: startUpstream(t, key),
	}
}

// instance is one `caddy run` process of the gateway.
type instance struct {
	name   string
	base   string // http://localhost:<port>
	admin  string // http://localhost:<port> of its admin API
	outbox string
	log    string // path of the process's stderr and stdout
	cmd    *exec.Cmd
	exited chan struct{}
	client *http.Client

	// sent holds the codes the outbox, a named pipe, carried, by flow ID;
	// arrived is broadcast at each.
	mu      sync.Mutex
	sent    map[string]string
	arrived *wake.Signal
}

// instanceConfig is the Caddyfile of one instance: the site
// http://localhost:httpPort with the directives of site. It serves the site
// on the listener it inherits as file descriptor httpFD, whose port is
// httpPort, and its admin API on adminFD.
func instanceConfig(httpPort int, site string) string {
	return fmt.Sprintf(`{
	admin fd/%d
	auto_https off
	persist_config off
	skip_install_trust
	grace_period 1s
}

http://localhost:%d {
	bind fd/%d
%s}
`, adminFD, httpPort, httpFD, site)
}

// caddyfile is the configuration of one instance: the gateway in front of
// the deployment's upstream, with state in Redis at redisURL, and a plain
// /health route that never touches Redis.
func (d *deployment) caddyfile(httpPort int, redisURL, outbox, extra string) string {
	return instanceConfig(httpPort, fmt.Sprintf(`	sms_recovery {
		site_name "Example Mail"
		public_url http://localhost:%[1]d
		directory file %[2]q
		sms outbox %[3]q
		support "Call +1 555 0100"
		secret %[4]s
		storage redis %[5]q {
			prefix %[6]s
			allow_volatile
		}
		%[7]s
		forward {
			path /api/reset-password
			key_id %[8]s
			hmac_key %[9]s
		}
	}
	respond /health "ok" 200
	reverse_proxy %[10]s
`, httpPort, d.phones, outbox, d.secret, redisURL, d.prefix, extra,
		keyID, base64.StdEncoding.EncodeToString(d.hmacKey), d.upstream.addr))
}

// nodeSpec says how to start one instance.
type nodeSpec struct {
	slot  slot
	redis string // storage URL; default redistest.URL()
	extra string // more sms_recovery subdirectives
	// config, when set, replaces the gateway's Caddyfile: it gets the
	// HTTP port the instance serves on, as caddyfile does.
	config func(httpPort int) string
}

// start runs one instance per spec, waits until all answer and stops them
// when t ends.
func (d *deployment) start(t *testing.T, specs ...nodeSpec) []*instance {
	t.Helper()
	nodes := make([]*instance, len(specs))
	for i, s := range specs {
		nodes[i] = d.launch(t, s)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	return nodes
}

// launch starts one instance. The test listens on two free ports and hands
// the listening sockets to Caddy, which serves on them (bind fd/N): no port
// is free between choosing it and serving on it, so nothing else can take
// it, and a request sent before Caddy is ready waits in the socket's
// backlog instead of being refused.
func (d *deployment) launch(t *testing.T, s nodeSpec) *instance {
	t.Helper()
	if s.redis == "" {
		s.redis = redistest.URL()
	}
	httpFile, httpPort := freeport.File(t)
	adminFile, adminPort := freeport.File(t)
	files := []*os.File{httpFile, adminFile} // as ExtraFiles: httpFD, then adminFD
	for _, f := range files {
		defer f.Close() // the child has its own copy once started
	}
	dir := t.TempDir()
	n := &instance{
		name:    s.slot.name,
		base:    fmt.Sprintf("http://localhost:%d", httpPort),
		admin:   fmt.Sprintf("http://localhost:%d", adminPort),
		outbox:  filepath.Join(dir, "outbox.jsonl"),
		log:     filepath.Join(dir, "caddy.log"),
		exited:  make(chan struct{}),
		client:  &http.Client{Timeout: 10 * time.Second},
		sent:    map[string]string{},
		arrived: wake.New(),
	}
	n.readOutbox(t)
	config := filepath.Join(dir, "Caddyfile")
	text := d.caddyfile(httpPort, s.redis, n.outbox, s.extra)
	if s.config != nil {
		text = s.config(httpPort)
	}
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(caddyBin, "run", "--config", config, "--adapter", "caddyfile")
	n.cmd.Dir = dir
	// Caddy's data and config directories (certificates, autosave) go to
	// the test's directory instead of the user's home.
	n.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.ExtraFiles = files
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting instance %s: %v", n.name, err)
	}
	go func() {
		_ = n.cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// waitReady asks the instance's /health once and waits for the answer.
// The socket listens from before the process starts, so the request waits
// in its backlog until Caddy serves it, which it does only once the whole
// config runs; if the process exits first, the socket closes with it.
func (n *instance) waitReady(t *testing.T) {
	t.Helper()
	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		res, err := c.Get(n.base + "/health")
		if err != nil {
			answered <- result{err: err}
			return
		}
		res.Body.Close()
		answered <- result{status: res.StatusCode}
	}()
	select {
	case <-n.exited:
		t.Fatalf("instance %s exited before answering:\n%s", n.name, n.logTail())
	case r := <-answered:
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("instance %s: GET /health = %d, %v; want 200:\n%s", n.name, r.status, r.err, n.logTail())
		}
	}
}

// stop interrupts the process, as Ctrl-C would, and kills it if it has not
// ended within ten seconds. On failure it shows the end of the log.
func (n *instance) stop(t *testing.T) {
	n.client.CloseIdleConnections()
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("instance %s did not stop within 10s; killing it", n.name)
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	if t.Failed() {
		t.Logf("log of instance %s:\n%s", n.name, n.logTail())
	}
}

// logTail is the last lines the process wrote.
func (n *instance) logTail() string {
	b, err := os.ReadFile(n.log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logCount counts the lines of the log that contain s.
func (n *instance) logCount(s string) int {
	b, _ := os.ReadFile(n.log)
	return strings.Count(string(b), s)
}

// caddy runs the binary with args and returns its combined output.
func caddy(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// readAll drains and closes a response body.
func readAll(r io.ReadCloser) string {
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}
