package instances

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

// verifierCaddyfile is the configuration of one instance of
// sms_recovery_verify in front of a stand-in upstream that answers 200
// "changed" to every reset that gets through. nonceStore is the
// nonce_store line, or "" for the default.
func (d *deployment) verifierCaddyfile(httpPort int, nonceStore string) string {
	return instanceConfig(httpPort, fmt.Sprintf(`	respond /health "ok" 200
	sms_recovery_verify %[1]s {
		key_id %[2]s
		hmac_key %[3]s
		%[4]s
	}
	respond %[1]s "changed" 200
`, resetPath, keyID, base64.StdEncoding.EncodeToString(d.hmacKey), nonceStore))
}

// signedReset is one reset as the gateway forwards it.
type signedReset struct {
	header http.Header
	body   string
}

// signReset signs a reset for account with the deployment's forward key.
func (d *deployment) signReset(t *testing.T, account string) signedReset {
	t.Helper()
	s, err := httpsig.NewHMACSigner(keyID, d.hmacKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body := "{" + newPassword + "}"
	h := http.Header{"Content-Type": {"application/json"}}
	if err := s.Sign(h, http.MethodPost, resetPath, []byte(body), account, time.Now()); err != nil {
		t.Fatal(err)
	}
	return signedReset{header: h, body: body}
}

// send posts the signed reset to the instance and returns the status.
func (n *instance) send(r signedReset) (int, error) {
	req, err := http.NewRequest(http.MethodPost, n.base+resetPath, strings.NewReader(r.body))
	if err != nil {
		return 0, err
	}
	req.Header = r.header.Clone()
	res, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	readAll(res.Body)
	return res.StatusCode, nil
}

// mustSend is send that fails the test on a transport error.
func (n *instance) mustSend(t *testing.T, r signedReset) int {
	t.Helper()
	status, err := n.send(r)
	if err != nil {
		t.Fatalf("instance %s: POST %s: %v", n.name, resetPath, err)
	}
	return status
}

// TestSignedResetOnceAcrossVerifiers runs sms_recovery_verify as two Caddy
// processes that share a nonce store in Redis, the way an upstream behind a
// load balancer runs it: a signed reset is accepted once, whichever
// instance sees it and however often either restarts (SPEC §6).
func TestSignedResetOnceAcrossVerifiers(t *testing.T) {
	needRedis(t)
	d := newDeployment(t)
	nonceStore := fmt.Sprintf("nonce_store redis %q {\n\t\t\tprefix %s\n\t\t}", redistest.URL(), d.prefix)
	spec := func(s slot) nodeSpec {
		return nodeSpec{slot: s, config: func(port int) string { return d.verifierCaddyfile(port, nonceStore) }}
	}
	nodes := d.start(t, spec(slotA), spec(slotB))
	a, b := nodes[0], nodes[1]

	first := d.signReset(t, alice)
	t.Run("accepted by A, replayed to B", func(t *testing.T) {
		if got := a.mustSend(t, first); got != http.StatusOK {
			t.Fatalf("A: first use = %d, want 200", got)
		}
		for _, n := range []*instance{b, a} {
			if got := n.mustSend(t, first); got != http.StatusUnauthorized {
				t.Errorf("%s: replay = %d, want 401", n.name, got)
			}
		}
	})

	second := d.signReset(t, bob)
	t.Run("concurrent replays to both instances", func(t *testing.T) {
		const each = 8
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			statuses = map[int]int{}
		)
		start := make(chan struct{})
		for i := range 2 * each {
			n := []*instance{a, b}[i%2]
			wg.Go(func() {
				<-start
				status, err := n.send(second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("%s: %v", n.name, err)
					return
				}
				statuses[status]++
			})
		}
		close(start)
		wg.Wait()
		if statuses[http.StatusOK] != 1 || statuses[http.StatusUnauthorized] != 2*each-1 {
			t.Errorf("answers by status %v, want one 200 and %d 401", statuses, 2*each-1)
		}
	})

	t.Run("restarted instances still refuse", func(t *testing.T) {
		a.stop(t)
		b.stop(t)
		restarted := d.start(t, spec(slotA), spec(slotB))
		for _, n := range restarted {
			for name, r := range map[string]signedReset{"first": first, "second": second} {
				if got := n.mustSend(t, r); got != http.StatusUnauthorized {
					t.Errorf("restarted %s: replay of the %s reset = %d, want 401", n.name, name, got)
				}
			}
		}
		fresh := d.signReset(t, carol)
		if got := restarted[1].mustSend(t, fresh); got != http.StatusOK {
			t.Errorf("restarted B: a new signed reset = %d, want 200", got)
		}
		if got := restarted[0].mustSend(t, fresh); got != http.StatusUnauthorized {
			t.Errorf("restarted A: its replay = %d, want 401", got)
		}
	})
}

// TestVerifierRefusesBadNonceStoreURL: caddy validate, which provisions
// the config as a load does, refuses a nonce store URL that cannot work,
// naming the directive and never showing the password in it.
func TestVerifierRefusesBadNonceStoreURL(t *testing.T) {
	needCaddy(t)
	d := &deployment{hmacKey: make([]byte, 64)}
	const secret = "hunter2-s3cret"
	for _, tt := range []struct{ name, url, want string }{
		{"bad port", "redis://admin:" + secret + "@127.0.0.1:port/0", "nonce_store redis: parsing redis url"},
		{"bad database", "redis://:" + secret + "@127.0.0.1:6379/first", "nonce_store redis: parsing redis url"},
		{"not redis", "https://admin:" + secret + "@127.0.0.1:6379", `nonce_store redis: unsupported redis url scheme \"https\"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config := filepath.Join(t.TempDir(), "Caddyfile")
			text := strings.Replace(d.verifierCaddyfile(8081, "nonce_store redis "+tt.url), "bind fd/3", "", 1)
			text = strings.Replace(text, "admin fd/4", "admin off", 1)
			if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := caddy(ctx, "validate", "--config", config, "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("caddy validate accepted the config:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("caddy validate said:\n%s\nwant it to contain %s", out, tt.want)
			}
			if strings.Contains(out, secret) {
				t.Errorf("caddy validate showed the password:\n%s", out)
			}
		})
	}
}
