package legacymail

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// newAlicePassword is the password the recovery flow gives alice.
const newAlicePassword = "N3w-s3cret-passw0rd!"

// TestPasswordResetReachesDovecot changes alice's mail password through the
// gateway and checks it where it matters: Dovecot's IMAP login. Then it
// sends the PHP endpoint what an attacker behind the gateway could, and
// checks that each is refused for its own reason and that the passwd-file
// stays byte for byte the same.
func TestPasswordResetReachesDovecot(t *testing.T) {
	needStack(t)
	began := time.Now()
	s := startStack(t)
	t.Logf("stack up in %v", time.Since(began).Round(time.Millisecond))

	if err := s.login(alice, alicePassword); err != nil {
		t.Fatalf("IMAP login with alice's first password: %v\n%s", err, s.logs())
	}

	token := s.tokenFor(t, alice)
	// The reset lands in a later second of Dovecot's clock than the login
	// above, as it does when a person types (see nextDovecotSecond).
	s.nextDovecotSecond(t)
	a := s.api(t, "reset", map[string]string{"reset_token": token, "password": newAlicePassword})
	if a.Status != http.StatusOK || a.str("changed") != alice {
		t.Fatalf("reset through the gateway = %v, want 200 {\"changed\":%q}\n%s", a, alice, s.logs())
	}

	if err := s.login(alice, newAlicePassword); err != nil {
		t.Fatalf("IMAP login with alice's new password: %v\n%s", err, s.logs())
	}
	if err := s.login(bob, bobPassword); err != nil {
		t.Fatalf("IMAP login of bob, whose password nobody changed: %v", err)
	}
	if err := s.loginFrom(failedLoginFrom, alice, alicePassword); !authFailed(err) {
		t.Fatalf("IMAP login with alice's old password after the reset: %v, want AUTHENTICATIONFAILED", err)
	}

	resets := s.tap.captures()
	if len(resets) != 1 {
		t.Fatalf("the webmail got %d resets, want 1", len(resets))
	}
	signed := resets[0]
	if got, want := string(signed.body), fmt.Sprintf(`{"password":%q}`, newAlicePassword); got != want {
		t.Fatalf("the webmail got body %s, want %s (forward { fields password })", got, want)
	}

	t.Run("attacks on the endpoint", func(t *testing.T) {
		for _, tt := range endpointAttacks(signed) {
			t.Run(tt.name, func(t *testing.T) {
				before, refused := s.passwd(t), s.refusals(t, tt.reason)
				base := s.webmail
				if tt.viaGateway {
					base = s.gateway
				}
				a := s.post(t, base+resetPath, tt.header, tt.body)
				if a.Status != http.StatusUnauthorized || a.str("error") != "invalid_signature" {
					t.Errorf("POST %s = %v, want 401 invalid_signature", resetPath, a)
				}
				if got := s.refusals(t, tt.reason); got != refused+1 {
					t.Errorf("PHP logged %q %d times, want once more than %d: refused for another reason?\n%s", tt.reason, got, refused, s.logs())
				}
				if after := s.passwd(t); !bytes.Equal(after, before) {
					t.Errorf("the passwd-file changed:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	})

	t.Run("the spent token through the gateway", func(t *testing.T) {
		before, forwarded := s.passwd(t), len(s.tap.captures())
		a := s.api(t, "reset", map[string]string{"reset_token": token, "password": "an0ther-passw0rd!"})
		if a.Status != http.StatusUnauthorized || a.str("error") != "invalid_token" {
			t.Errorf("second reset with one token = %v, want 401 invalid_token", a)
		}
		if after := s.passwd(t); !bytes.Equal(after, before) {
			t.Errorf("the passwd-file changed:\nbefore %s\nafter  %s", before, after)
		}
		if n := len(s.tap.captures()); n != forwarded {
			t.Errorf("the webmail got %d resets, want still %d", n, forwarded)
		}
	})

	if err := s.login(alice, newAlicePassword); err != nil {
		t.Errorf("IMAP login with alice's new password after the attacks: %v", err)
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// TestConcurrentUseOfOneSignedReset takes a signed reset that PHP has never
// seen and sends it to the endpoint many times at once. The php-fpm workers
// share the nonce cache, so exactly one use changes the password.
func TestConcurrentUseOfOneSignedReset(t *testing.T) {
	needStack(t)
	s := startStack(t)

	token := s.tokenFor(t, bob)
	s.tap.holdNext()
	const bobNew = "b0b-new-passw0rd!"
	a := s.api(t, "reset", map[string]string{"reset_token": token, "password": bobNew})
	if a.Status != http.StatusServiceUnavailable {
		t.Fatalf("reset held by the tap = %v, want its 503", a)
	}
	resets := s.tap.captures()
	if len(resets) != 1 {
		t.Fatalf("the tap holds %d resets, want 1", len(resets))
	}
	held := resets[0]

	before := s.passwd(t)
	if err := s.login(bob, bobPassword); err != nil {
		t.Fatalf("IMAP login with bob's first password: %v", err)
	}
	s.nextDovecotSecond(t) // see TestPasswordResetReachesDovecot
	replays := s.refusals(t, "nonce replayed")

	const n = 8
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := s.do(s.webmail+resetPath, held.header, held.body)
			statuses[i], errs[i] = a.Status, err
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	ok := 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusUnauthorized:
		default:
			t.Errorf("a concurrent use answered %d, want 200 or 401", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one signed reset succeeded, want exactly 1 (statuses %v)\n%s", ok, n, statuses, s.logs())
	}
	if got := s.refusals(t, "nonce replayed") - replays; got != n-1 {
		t.Errorf("PHP refused %d uses as replays, want %d", got, n-1)
	}
	if bytes.Equal(s.passwd(t), before) {
		t.Fatal("the passwd-file did not change")
	}
	if err := s.login(bob, bobNew); err != nil {
		t.Fatalf("IMAP login with bob's new password: %v", err)
	}
	if err := s.loginFrom(failedLoginFrom, bob, bobPassword); !authFailed(err) {
		t.Fatalf("IMAP login with bob's old password: %v, want AUTHENTICATIONFAILED", err)
	}
}

// attack is one request someone behind the gateway sends the endpoint, and
// the reason PHP must log for refusing it.
type attack struct {
	name   string
	header http.Header
	body   []byte
	reason string
	// viaGateway sends it to the gateway's public address instead, which
	// passes the path on to the webmail like any route it does not own.
	viaGateway bool
}

// endpointAttacks are the requests an attacker who can reach the webmail,
// and has read the signed reset it received, could make of it.
func endpointAttacks(signed captured) []attack {
	attackerBody := []byte(`{"password":"attacker-chosen-pw1"}`)
	with := func(edit func(h http.Header)) http.Header {
		h := signed.header.Clone()
		edit(h)
		return h
	}
	unsigned := http.Header{"Content-Type": {"application/json"}, "X-Recovery-Account": {alice}}
	return []attack{
		{name: "unsigned", header: unsigned, body: attackerBody, reason: "no signature in the gateway's format"},
		{name: "forged signature", header: forged(alice, attackerBody), body: attackerBody, reason: "bad signature"},
		{name: "replayed", header: signed.header, body: signed.body, reason: "nonce replayed"},
		// The gateway drops the signature headers a client sends.
		{name: "replayed through the gateway", header: signed.header, body: signed.body,
			reason: "no signature in the gateway's format", viaGateway: true},
		{name: "tampered body", header: signed.header, body: attackerBody, reason: "body does not match Content-Digest"},
		{name: "tampered body with its digest", header: with(func(h http.Header) {
			h.Set("Content-Digest", digest(attackerBody))
		}), body: attackerBody, reason: "bad signature"},
		{name: "other account", header: with(func(h http.Header) {
			h.Set("X-Recovery-Account", bob)
		}), body: signed.body, reason: "bad signature"},
		{name: "other key id", header: with(func(h http.Header) {
			h.Set("Signature-Input", replaceOnce(h.Get("Signature-Input"), `keyid="gw1"`, `keyid="gw2"`))
		}), body: signed.body, reason: "unknown keyid or wrong alg"},
		{name: "hmac instead of ed25519", header: with(func(h http.Header) {
			h.Set("Signature-Input", replaceOnce(h.Get("Signature-Input"), `alg="ed25519"`, `alg="hmac-sha256"`))
		}), body: signed.body, reason: "unknown keyid or wrong alg"},
	}
}

// forged is a reset in the gateway's exact format, fresh and with a nonce
// never used, signed with a key that is not the gateway's.
func forged(account string, body []byte) http.Header {
	now := time.Now().Unix()
	nonce := make([]byte, 16)
	sig := make([]byte, 64)
	_, _ = rand.Read(nonce)
	_, _ = rand.Read(sig)
	return http.Header{
		"Content-Type":       {"application/json"},
		"X-Recovery-Account": {account},
		"Content-Digest":     {digest(body)},
		"Signature-Input": {fmt.Sprintf(`recovery=("@method" "@path" "content-digest" "x-recovery-account");created=%d;expires=%d;nonce="%s";keyid="gw1";alg="ed25519";tag="sms-recovery"`,
			now, now+60, base64.RawURLEncoding.EncodeToString(nonce))},
		"Signature": {"recovery=:" + base64.StdEncoding.EncodeToString(sig) + ":"},
	}
}

func digest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

func replaceOnce(s, old, new string) string {
	i := bytes.Index([]byte(s), []byte(old))
	if i < 0 {
		panic(fmt.Sprintf("%q not in %q", old, s))
	}
	return s[:i] + new + s[i+len(old):]
}

// authFailed reports whether err is Dovecot refusing the credentials.
func authFailed(err error) bool {
	var e *imap.Error
	return errors.As(err, &e) && e.Code == imap.ResponseCodeAuthenticationFailed
}
