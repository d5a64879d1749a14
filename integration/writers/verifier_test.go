package writers

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// The path and key the gateway would forward resets with.
const (
	resetPath = "/api/reset-password"
	keyID     = "gw1"
)

// The listeners Caddy inherits, as its fd/N network addresses name them:
// os/exec passes ExtraFiles[i] as file descriptor 3+i.
const (
	httpFD  = 3
	adminFD = 4
)

// verifier is one `caddy run` of sms_recovery_verify with a writer.
type verifier struct {
	base   string // http://localhost:<port>
	signer *httpsig.Signer
	log    string
	cmd    *exec.Cmd
	ended  chan struct{}
	client *http.Client
}

// startVerifier runs Caddy with sms_recovery_verify on resetPath, its
// writer set by password, the rest of a "password" line and its block, and waits
// until it serves. It stops when t ends.
func startVerifier(t *testing.T, write string) *verifier {
	t.Helper()
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	signer, err := httpsig.NewHMACSigner(keyID, key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	httpFile, httpPort := freeport.File(t)
	adminFile, _ := freeport.File(t)
	files := []*os.File{httpFile, adminFile} // as ExtraFiles: httpFD, then adminFD
	for _, f := range files {
		defer f.Close() // the child has its own copy once started
	}
	dir := t.TempDir()
	v := &verifier{
		base:   fmt.Sprintf("http://localhost:%d", httpPort),
		signer: signer,
		log:    filepath.Join(dir, "caddy.log"),
		ended:  make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second},
	}
	config := fmt.Sprintf(`{
	admin fd/%d
	auto_https off
	persist_config off
	skip_install_trust
	grace_period 1s
}

http://localhost:%d {
	bind fd/%d
	respond /health "ok" 200
	sms_recovery_verify %s {
		key_id %s
		hmac_key %s
		password %s
	}
	respond 404
}
`, adminFD, httpPort, httpFD, resetPath, keyID, base64.StdEncoding.EncodeToString(key), write)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(v.log)
	if err != nil {
		t.Fatal(err)
	}
	v.cmd = exec.Command(caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	v.cmd.Dir = dir
	v.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	v.cmd.Stdout, v.cmd.Stderr = logFile, logFile
	v.cmd.ExtraFiles = files
	if err := v.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting Caddy: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		logFile.Close()
		close(v.ended)
	}()
	t.Cleanup(func() { v.stop(t) })
	v.waitReady(t)
	return v
}

// waitReady asks /health once and waits for the answer. The socket
// listens from before the process starts, so the request waits in its
// backlog until Caddy serves it; if the process exits first, the socket
// closes with it.
func (v *verifier) waitReady(t *testing.T) {
	t.Helper()
	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		res, err := v.client.Get(v.base + "/health")
		if err != nil {
			answered <- result{err: err}
			return
		}
		res.Body.Close()
		answered <- result{status: res.StatusCode}
	}()
	select {
	case <-v.ended:
		t.Fatalf("Caddy exited before answering:\n%s", v.logText())
	case r := <-answered:
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("GET /health = %d, %v; want 200:\n%s", r.status, r.err, v.logText())
		}
	}
}

// stop interrupts Caddy, as Ctrl-C would, and kills it if it has not
// ended within ten seconds. On failure it shows the log.
func (v *verifier) stop(t *testing.T) {
	v.client.CloseIdleConnections()
	_ = v.cmd.Process.Signal(os.Interrupt)
	select {
	case <-v.ended:
	case <-time.After(10 * time.Second):
		t.Errorf("Caddy did not stop within 10s; killing it")
		_ = v.cmd.Process.Kill()
		<-v.ended
	}
	if t.Failed() {
		t.Logf("Caddy's log:\n%s", v.logText())
	}
}

func (v *verifier) logText() string {
	b, err := os.ReadFile(v.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
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

// reset posts a reset of account to password, signed as the gateway signs
// the resets it forwards, each with a nonce of its own.
func (v *verifier) reset(t *testing.T, account, password string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"password": password})
	h := http.Header{"Content-Type": {"application/json"}}
	if err := v.signer.Sign(h, http.MethodPost, resetPath, body, account, time.Now()); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, v.base+resetPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", resetPath, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{Status: res.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Body)
	return a
}
