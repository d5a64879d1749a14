package instances

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slot is a pair of fixed ports one instance listens on.
type slot struct {
	name  string
	admin int
	http  int
}

// The two slots; no other package of the project uses these ports.
var (
	slotA = slot{name: "A", admin: 2101, http: 9181}
	slotB = slot{name: "B", admin: 2102, http: 9182}
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
	outbox string
	log    string // path of the process's stderr and stdout
	cmd    *exec.Cmd
	exited chan struct{}
	client *http.Client
}

// caddyfile is the configuration of one instance: the gateway in front of
// the deployment's upstream, with state in Redis at redisURL, and a plain
// /health route that never touches Redis.
func (d *deployment) caddyfile(s slot, redisURL, outbox, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:%[1]d
	http_port %[2]d
	auto_https off
	persist_config off
	skip_install_trust
	grace_period 1s
}

http://localhost:%[2]d {
	sms_recovery {
		site_name "Example Mail"
		public_url http://localhost:%[2]d
		directory file %[3]q
		sms outbox %[4]q
		support "Call +1 555 0100"
		secret %[5]s
		storage redis %[6]q {
			prefix %[7]s
		}
		%[8]s
		forward {
			path /api/reset-password
			key_id %[9]s
			hmac_key %[10]s
		}
	}
	respond /health "ok" 200
	reverse_proxy %[11]s
}
`, s.admin, s.http, d.phones, outbox, d.secret, redisURL, d.prefix, extra,
		keyID, base64.StdEncoding.EncodeToString(d.hmacKey), d.upstream.addr)
}

// nodeSpec says how to start one instance.
type nodeSpec struct {
	slot  slot
	redis string // storage URL; default redisURL()
	extra string // more sms_recovery subdirectives
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

func (d *deployment) launch(t *testing.T, s nodeSpec) *instance {
	t.Helper()
	for _, port := range []int{s.slot.admin, s.slot.http} {
		ln, err := net.Listen("tcp", fmt.Sprintf("localhost:%d", port))
		if err != nil {
			t.Fatalf("instance %s: port %d is taken, perhaps by a Caddy left from another run: %v", s.slot.name, port, err)
		}
		ln.Close()
	}
	if s.redis == "" {
		s.redis = redisURL()
	}
	dir := t.TempDir()
	n := &instance{
		name:   s.slot.name,
		base:   fmt.Sprintf("http://localhost:%d", s.slot.http),
		outbox: filepath.Join(dir, "outbox.jsonl"),
		log:    filepath.Join(dir, "caddy.log"),
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(d.caddyfile(s.slot, s.redis, n.outbox, s.extra)), 0o600); err != nil {
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

// waitReady polls the instance's /health until it answers.
func (n *instance) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-n.exited:
			t.Fatalf("instance %s exited before answering:\n%s", n.name, n.logTail())
		default:
		}
		if res, err := n.client.Get(n.base + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not answer within 30s:\n%s", n.name, n.logTail())
		}
		time.Sleep(50 * time.Millisecond)
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
