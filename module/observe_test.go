package module

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// accountHash is the documented recipe for the hash that stands for an
// account in log lines and Caddy events (docs/operations.md): the first 16
// hex digits of HMAC-SHA256 under the newest secret of "sms-recovery
// account log", a zero byte and the normalised account. It is written out
// here rather than taken from the keyring, so that the recipe support
// follows is what is tested.
func accountHash(t *testing.T, secret, account string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sms-recovery account log\x00" + account))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// runAccountEvents has g log and emit events that name account: a flow
// started, wrong codes, a lockout, a refusal while locked, and a lock lifted
// through the admin API.
func runAccountEvents(t *testing.T, g *opsGateway, account, ip string) {
	t.Helper()
	g.lock(account, ip, 2, http.StatusLocked)
	if w := g.post("/start", ip, map[string]string{"account": account}); w.Code != http.StatusLocked {
		t.Fatalf("start while locked: %d %s", w.Code, w.Body)
	}
	if status, _, body := opsAdmin(t, http.MethodDelete, "/sms-recovery/locks/account/"+account); status != http.StatusOK {
		t.Fatalf("lift: %d %s", status, body)
	}
}

// accountGateway is a gateway whose lockout comes after two wrong codes.
func accountGateway(t *testing.T, phones map[string]string, configure func(*Handler)) *opsGateway {
	t.Helper()
	return newOpsGateway(t, phones, func(h *Handler) {
		hour := caddy.Duration(time.Hour)
		h.Lockout = &Threshold{Failures: 2, Window: hour, Duration: hour}
		if configure != nil {
			configure(h)
		}
	})
}

// TestLogAccountsHashedByDefault: with no log_accounts, no log line and no
// Caddy event holds the account, in any case, while every security event
// that concerns it holds its keyed hash, which support can compute.
func TestLogAccountsHashedByDefault(t *testing.T) {
	t.Parallel()
	const (
		account = "hashed-alice@example.com"
		typed   = "Hashed-Alice@Example.COM"
		ip      = "192.0.2.80"
	)
	g := accountGateway(t, map[string]string{account: "+31612345680"}, nil)
	runAccountEvents(t, g, typed, ip)
	g.close()

	want := accountHash(t, opsSecret, account)
	lines, events := serialize(t, g.logs), g.events.all()
	for _, l := range append(lines, events...) {
		if strings.Contains(strings.ToLower(l), "hashed-alice") {
			t.Errorf("holds the account in clear: %s", l)
		}
	}
	named := 0
	for _, e := range g.logs.All() {
		if e.Message != "security event" {
			continue
		}
		f := e.ContextMap()
		if _, ok := f["account"]; ok {
			t.Errorf("security event %v has an account field", f)
		}
		if f["account_hash"] == want {
			named++
		} else if f["account_hash"] != nil {
			t.Errorf("security event %v: account_hash, want %s", f, want)
		}
	}
	// flow_started, wrong_code twice, account_locked, lock_notice,
	// request_refused and lock_lifted.
	if named < 7 {
		t.Errorf("%d security events name the account by its hash %s, want at least 7:\n%s", named, want, strings.Join(lines, "\n"))
	}
	for _, name := range []string{"flow_started", "account_locked", "lock_lifted"} {
		data := g.events.named("sms_recovery_" + name)
		if len(data) == 0 {
			t.Errorf("no Caddy event sms_recovery_%s", name)
		}
		for _, d := range data {
			if d["account_hash"] != want || d["account"] != nil {
				t.Errorf("Caddy event sms_recovery_%s = %v, want account_hash %s and no account", name, d, want)
			}
		}
	}
}

// TestLogAccountsClear: log_accounts clear names the account itself in
// every security event that concerns it, beside its hash.
func TestLogAccountsClear(t *testing.T) {
	t.Parallel()
	const (
		account = "clear-alice@example.com"
		ip      = "192.0.2.81"
	)
	g := accountGateway(t, map[string]string{account: "+31612345681"}, func(h *Handler) { h.LogAccounts = "clear" })
	runAccountEvents(t, g, account, ip)
	g.close()

	want := accountHash(t, opsSecret, account)
	for _, name := range []string{"flow_started", "wrong_code", "account_locked", "request_refused", "lock_lifted"} {
		logged := loggedEvents(g.logs, name)
		if len(logged) == 0 {
			t.Errorf("no %s log line", name)
		}
		for _, f := range logged {
			if f["account"] != account || f["account_hash"] != want {
				t.Errorf("%s log line %v, want account %s and account_hash %s", name, f, account, want)
			}
		}
		for _, d := range g.events.named("sms_recovery_" + name) {
			if d["account"] != account || d["account_hash"] != want {
				t.Errorf("Caddy event sms_recovery_%s = %v, want account %s and account_hash %s", name, d, account, want)
			}
		}
	}
}

// TestAccountHashSharedBySecret: two gateways with the same secret name an
// account by the same hash, even when they forward to upstreams of other
// keys; a gateway with another secret by another.
func TestAccountHashSharedBySecret(t *testing.T) {
	t.Parallel()
	const (
		account = "shared-alice@example.com"
		ip      = "192.0.2.82"
	)
	phones := map[string]string{account: "+31612345682"}
	otherSecret := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 32)))
	gateways := []*opsGateway{
		newOpsGateway(t, phones, nil),
		newOpsGateway(t, phones, func(h *Handler) {
			h.Forward.HMACKey = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 64)))
		}),
		newOpsGateway(t, phones, func(h *Handler) { h.Secrets = []string{otherSecret} }),
	}
	var hashes []string
	for _, g := range gateways {
		g.start(account, ip)
		logged := loggedEvents(g.logs, "flow_started")
		if len(logged) != 1 {
			t.Fatalf("%d flow_started lines", len(logged))
		}
		h, _ := logged[0]["account_hash"].(string)
		hashes = append(hashes, h)
	}
	if want := accountHash(t, opsSecret, account); hashes[0] != want || hashes[1] != want {
		t.Errorf("gateways with one secret log %s and %s, want %s for both", hashes[0], hashes[1], want)
	}
	if want := accountHash(t, otherSecret, account); hashes[2] != want || hashes[2] == hashes[0] {
		t.Errorf("a gateway with another secret logs %s, want %s", hashes[2], want)
	}
}
