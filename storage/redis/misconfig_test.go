package redisstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/storagetest"
)

// The passwords of the test servers: no message may hold them, nor the
// wrong ones the cases give.
const (
	testPassword     = "pa55-Server-Secret"
	testSentinelPass = "pa55-Sentinel-Secret"
	testWrong        = "wr0ng-Guess-Secret"
)

// writeTestCerts makes a CA and a certificate for 127.0.0.1 that it signs,
// in dir, and returns the paths of the CA's certificate and of the
// server's certificate and key.
func writeTestCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "PRIVATE KEY", keyDER)
}

// startTLSRedis starts a redis-server that also listens for TLS, with a
// certificate of a CA of the test's own, and returns the TLS port's
// address: a port that speaks only TLS. With clientCerts, the server asks
// every client for a certificate.
func startTLSRedis(t *testing.T, clientCerts bool) string {
	t.Helper()
	ca, cert, key := writeTestCerts(t, t.TempDir())
	port := freePort(t)
	auth := "no"
	if clientCerts {
		auth = "yes"
	}
	startRedis(t, "tls-port "+strconv.Itoa(port), "tls-cert-file "+cert, "tls-key-file "+key,
		"tls-ca-cert-file "+ca, "tls-auth-clients "+auth)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// startAuthSentinel starts a primary that requires testPassword and a
// sentinel, itself requiring testSentinelPass, that watches it as
// sentinelMaster, and returns the sentinel's address.
func startAuthSentinel(t *testing.T) string {
	t.Helper()
	primary := startRedis(t, "requirepass "+testPassword)
	host, port, _ := net.SplitHostPort(primary.addr)
	s := startRedis(t,
		"sentinel monitor "+sentinelMaster+" "+host+" "+port+" 1",
		"sentinel auth-pass "+sentinelMaster+" "+testPassword,
		"requirepass "+testSentinelPass)
	return s.addr
}

// openLogged loads the module from its JSON as a config would and opens
// it, with its load-time lines written to the returned log.
func openLogged(t *testing.T, raw string) (*Store, *zapobs.ObservedLogs, error) {
	t.Helper()
	s, err := loadStorage(t, raw)
	if err != nil {
		return nil, nil, err
	}
	core, logs := zapobs.New(zapcore.DebugLevel)
	s.logger = zap.New(core)
	o, err := s.Open()
	if err == nil {
		t.Cleanup(func() { o.Close() })
	}
	return s, logs, err
}

// noSecret fails t when text holds a password or a URL's userinfo.
func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, secret := range []string{testPassword, testSentinelPass, testWrong, "nobody:", "@127.0.0.1"} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds %q: %s", what, secret, text)
		}
	}
}

// TestRedisConfigErrorsRefused opens the store, as a config load does,
// against servers it is misconfigured for: each load is refused with a
// message that says what is wrong and what to change, and holds no
// password. The same servers with the right settings load.
func TestRedisConfigErrorsRefused(t *testing.T) {
	t.Parallel()
	pw := startRedis(t, "requirepass "+testPassword).addr
	acl := startRedis(t,
		"user gateway on >"+testPassword+" ~smsrec:* "+storeACL, // as the refusals suggest
		"user nohset on >"+testPassword+" ~* +@all -hset -pexpire",
		"user noscripts on >"+testPassword+" ~* +@all -evalsha -eval",
		"user otherkeys on >"+testPassword+" ~other:* +@all").addr
	tlsOnly := startTLSRedis(t, false)
	tlsClientCerts := startTLSRedis(t, true)
	sentinel := startAuthSentinel(t)
	sentinelURL := func(password, sentinelPassword, master string) string {
		u := "redis-sentinel://:" + password + "@" + sentinel + "?master=" + master
		if sentinelPassword != "" {
			u += "&sentinel_password=" + sentinelPassword
		}
		return u
	}

	tests := []struct {
		name string
		url  string
		want []string // parts of the refusal; nil: loads
	}{
		{"right password", "redis://:" + testPassword + "@" + pw + "/0", nil},
		{"wrong password", "redis://:" + testWrong + "@" + pw + "/0",
			[]string{"refused the user name or password", "WRONGPASS", "check the user name and password in url"}},
		{"missing password", "redis://" + pw + "/0",
			[]string{"requires a password", "NOAUTH", "url gives none"}},
		{"database out of range", "redis://:" + testPassword + "@" + pw + "/99",
			[]string{"has no database 99", "url"}},
		{"ACL user", "redis://gateway:" + testPassword + "@" + acl + "/0", nil},
		{"unknown user", "redis://nobody:" + testPassword + "@" + acl + "/0",
			[]string{"refused the user name or password", "WRONGPASS"}},
		{"user without commands the scripts run", "redis://nohset:" + testPassword + "@" + acl + "/0",
			[]string{"ACL", "hset", "pexpire", "ACL SETUSER", "url"}},
		{"user without scripts", "redis://noscripts:" + testPassword + "@" + acl + "/0",
			[]string{"ACL", "NOPERM", "eval", "url"}},
		{"user without the prefix's keys", "redis://otherkeys:" + testPassword + "@" + acl + "/0",
			[]string{"ACL", "NOPERM", "smsrec:", "prefix"}},
		{"TLS, verification skipped", "rediss://" + tlsOnly + "/0?skip_verify=true", nil},
		{"TLS with an unknown CA", "rediss://:" + testWrong + "@" + tlsOnly + "/0",
			[]string{"TLS certificate", "not trusted", "unknown authority", "url"}},
		{"TLS to a server that wants a client certificate", "rediss://:" + testWrong + "@" + tlsClientCerts + "/0?skip_verify=true",
			[]string{"ended the TLS handshake", "client certificate"}},
		{"TLS to a server without it", "rediss://:" + testPassword + "@" + pw + "/0",
			[]string{"does not speak TLS", "redis://"}},
		{"plain to a server that speaks only TLS", "redis://:" + testWrong + "@" + tlsOnly + "/0",
			[]string{"speaks only TLS", "rediss://"}},
		{"sentinel", sentinelURL(testPassword, testSentinelPass, sentinelMaster), nil},
		{"sentinel, wrong password of the primary", sentinelURL(testWrong, testSentinelPass, sentinelMaster),
			[]string{"refused the user name or password", "check the user name and password in url"}},
		{"sentinel, wrong sentinel password", sentinelURL(testPassword, testWrong, sentinelMaster),
			[]string{"sentinel", "refused", "sentinel_password"}},
		{"sentinel, missing sentinel password", sentinelURL(testPassword, "", sentinelMaster),
			[]string{"sentinel", "requires a password", "sentinel_password"}},
		{"sentinel, unknown master", sentinelURL(testPassword, testSentinelPass, "nosuchmaster"),
			[]string{`no master named "nosuchmaster"`, "master"}},
		{"cluster form, wrong password", "redis-cluster://:" + testWrong + "@" + pw,
			[]string{"refused the user name or password", "WRONGPASS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, _ := json.Marshal(map[string]any{"url": tt.url, "allow_volatile": true})
			_, logs, err := openLogged(t, string(raw))
			for _, e := range logs.All() {
				noSecret(t, "log line", logLine(e))
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("load: %v, want it to load", err)
				}
				if n := logs.FilterMessageSnippet("does not answer").Len(); n > 0 {
					t.Errorf("load warned the server does not answer: %v", logs.All())
				}
				return
			}
			if err == nil {
				t.Fatalf("load succeeded, want it refused with %q (log: %v)", tt.want, logs.All())
			}
			msg := err.Error()
			t.Logf("refused: %s", msg)
			noSecret(t, "error", msg)
			if !strings.HasPrefix(msg, "storage redis: ") || strings.Count(msg, "storage redis") != 1 {
				t.Errorf("error %q, want it to start with \"storage redis: \", once", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q, want it to hold %q", msg, w)
				}
			}
			if _, ok := errors.AsType[*MisconfiguredError](err); !ok {
				t.Errorf("error %q (%T) is no *MisconfiguredError", msg, err)
			}
		})
	}
}

// logLine renders a log line with its fields, for noSecret.
func logLine(e zapobs.LoggedEntry) string {
	b, _ := json.Marshal(e.ContextMap())
	return e.Message + " " + string(b)
}

// TestRedisDownStillLoads: a server that is down is no configuration
// error; the load warns and succeeds, as before, and requests fail closed.
func TestRedisDownStillLoads(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"redis://:" + testPassword + "@" + freeport.ClosedAddr(t) + "/0",
		"rediss://:" + testPassword + "@" + freeport.ClosedAddr(t) + "/0",
	} {
		raw, _ := json.Marshal(map[string]any{"url": url})
		s, logs, err := openLogged(t, string(raw))
		if err != nil {
			t.Fatalf("load with the server down: %v, want a warning only", err)
		}
		if logs.FilterMessageSnippet("does not answer").FilterLevelExact(zapcore.WarnLevel).Len() != 1 {
			t.Errorf("load with the server down logged %v, want one warning that it does not answer", logs.All())
		}
		for _, e := range logs.All() {
			noSecret(t, "log line", logLine(e))
		}
		if err := s.Ping(context.Background()); !errors.Is(err, recovery.ErrUnavailable) {
			t.Errorf("ping of a server that is down: %v, want ErrUnavailable", err)
		}
	}
}

// TestRedisConfigErrorAtRuntime: a password changed on the server after the
// load makes requests fail closed (ErrUnavailable, so 503), and the error
// the gateway logs says it is a configuration error and what to check;
// a server that went away says it is unavailable.
func TestRedisConfigErrorAtRuntime(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, "requirepass "+testPassword)
	// A server of its own, stopped at the end: no keys to sweep.
	r, err := openStore(&Store{URL: "redis://:" + testPassword + "@" + srv.addr + "/0", AllowVolatile: true}, serverTime{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	g := lossGuard(t, r)
	ctx := context.Background()
	if err := storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("before", "a@example.com")); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.addr, Password: testPassword})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "requirepass", testWrong).Err(); err != nil {
		t.Fatal(err)
	}
	// Connections made before the change stay authenticated; new ones are
	// refused.
	if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	err = storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("after", "a@example.com"))
	if !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("start after the password changed: %v, want ErrUnavailable", err)
	}
	msg := err.Error()
	noSecret(t, "error", msg)
	for _, w := range []string{"configuration error", "refused the user name or password", "url"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q, want it to hold %q", msg, w)
		}
	}
	if strings.Contains(msg, "unavailable") || strings.Count(msg, "checking limits") != 1 {
		t.Errorf("error %q, want it not called unavailable, and \"checking limits\" once", msg)
	}

	srv.stop()
	err = storagetest.StartFlow(ctx, g, "192.0.2.1", lossFlow("down", "a@example.com"))
	if !errors.Is(err, recovery.ErrUnavailable) {
		t.Fatalf("start with the server down: %v, want ErrUnavailable", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "unavailable") || strings.Contains(msg, "configuration") ||
		strings.Count(msg, "checking limits") != 1 {
		t.Errorf("error %q, want it called unavailable, not a configuration error, \"checking limits\" once", msg)
	}
}

// TestProbeCoversScripts: the probe asks the server's ACL about every
// command the store's scripts run.
func TestProbeCoversScripts(t *testing.T) {
	t.Parallel()
	probed := map[string]bool{}
	for _, c := range storeCommands("k", 0) {
		probed[strings.ToLower(c[0])] = true
	}
	call := regexp.MustCompile(`redis\.p?call\(\s*'([A-Za-z]+)'`)
	files, err := filepath.Glob("lua/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			if !probed[strings.ToLower(m[1])] {
				t.Errorf("%s runs %s, which the probe does not ask about", f, m[1])
			}
		}
	}
	for _, c := range []string{"evalsha", "eval", "hmget", "ping"} {
		if !probed[c] {
			t.Errorf("the probe does not ask about %s, which the store sends", c)
		}
	}
	if !slices.ContainsFunc(storeCommands("k", 1), func(c []string) bool { return c[0] == "wait" }) {
		t.Error("with min_replicas, the probe does not ask about WAIT")
	}
}

// fakeReply is a reply error as a server sends it.
type fakeReply string

func (e fakeReply) Error() string { return string(e) }
func (fakeReply) RedisError()     {}

// TestMisconfigured sorts errors into configuration errors and the rest.
func TestMisconfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string // part of the message; "": no configuration error
	}{
		{fakeReply("WRONGPASS invalid username-password pair or user is disabled."), "refused the user name or password"},
		{errors.Join(errors.New("failed to authenticate"), fakeReply("ERR invalid password")), "refused the user name or password"},
		{fakeReply("NOAUTH Authentication required."), "requires a password"},
		{fakeReply("NOPERM User u has no permissions to run the 'hset' command"), "ACL"},
		{fakeReply("ERR DB index is out of range"), "has no database"},
		{fakeReply("ERR The user executing the script can't run this command or subcommand script: 0f3e"), "ACL"},
		{fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w",
			fakeReply("WRONGPASS invalid username-password pair or user is disabled.")), "sentinel_password"},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "not trusted"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "does not speak TLS"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, "ended the TLS handshake"},
		{fakeReply("LOADING Redis is loading the dataset in memory"), ""},
		{fakeReply("READONLY You can't write against a read only replica."), ""},
		{fakeReply("WRONGTYPE Operation against a key holding the wrong kind of value"), ""},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ""},
		{context.DeadlineExceeded, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		m := misconfigured(tt.err)
		switch {
		case tt.want == "" && m != nil:
			t.Errorf("misconfigured(%v) = %v, want none", tt.err, m)
		case tt.want != "" && (m == nil || !strings.Contains(m.Error(), tt.want)):
			t.Errorf("misconfigured(%v) = %v, want one holding %q", tt.err, m, tt.want)
		case m != nil && !errors.Is(m, recovery.ErrUnavailable):
			t.Errorf("misconfigured(%v) does not match ErrUnavailable: requests would not fail closed with 503", tt.err)
		}
	}
}
