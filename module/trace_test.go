package module

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// traceOf reads the trail of ref through the admin API, in clear or not.
func traceOf(t *testing.T, ref string, inClear bool) (int, string, []storage.TrailEntry) {
	t.Helper()
	target := "/sms-recovery/trace/" + ref
	if inClear {
		target += "?clear=1"
	}
	status, _, body := opsAdmin(t, http.MethodGet, target)
	var out struct{ Entries []storage.TrailEntry }
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
	}
	return status, string(body), out.Entries
}

func referenceOf(t *testing.T, body []byte) string {
	t.Helper()
	var out struct{ Reference string }
	if err := json.Unmarshal(body, &out); err != nil || out.Reference == "" {
		t.Fatalf("answer %s has no reference", body)
	}
	return out.Reference
}

// TestTraceShowsOneFlowOnly runs two people's flows side by side: each
// refusal names its own flow's reference, whose trail holds that flow's
// events and answers and nothing of the other's; a reference forged from
// the other's flow ID without the secret, an unknown one and an expired
// one get the same 404, which tells nothing.
//
// Not parallel: the admin API reads every store in the process, and other
// tests stop their Redis on purpose.
func TestTraceShowsOneFlowOnly(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := newOpsGateway(t, map[string]string{"ann@example.com": "+31612345670", "ben@example.com": "+31612345671"},
				func(h *Handler) {
					if backend == "redis" {
						h.StorageRaw = redisTestStorage(t)
					}
				})
			flowA, flowB := g.start("ann@example.com", "192.0.2.70"), g.start("ben@example.com", "198.51.100.71")
			refA := referenceOf(t, g.verify(flowA, wrongCode(g.code(flowA)), "192.0.2.70", http.StatusBadRequest).Body.Bytes())
			refB := referenceOf(t, g.verify(flowB, wrongCode(g.code(flowB)), "198.51.100.71", http.StatusBadRequest).Body.Bytes())
			if refA != g.h.svc.Keys.TraceRef(flowA) || refB == refA {
				t.Fatalf("references %s and %s, want each flow's own", refA, refB)
			}
			for _, tc := range []struct {
				ref, ip, phone string
			}{{refA, "192.0.2.70", "+31*****670"}, {refB, "198.51.100.71", "+31*****671"}} {
				status, body, entries := traceOf(t, tc.ref, true)
				if status != http.StatusOK {
					t.Fatalf("trace %s: %d %s", tc.ref, status, body)
				}
				events := map[string]bool{}
				for _, e := range entries {
					events[e.Event] = true
					if (e.ClientIP != "" && e.ClientIP != tc.ip) || (e.Phone != "" && e.Phone != tc.phone) {
						t.Errorf("trace %s holds another flow's entry: %+v", tc.ref, e)
					}
				}
				for _, want := range []string{recovery.EventFlowStarted, "sms_sent", recovery.EventWrongCode, eventAnswered} {
					if !events[want] {
						t.Errorf("trace %s has no %s: %s", tc.ref, want, body)
					}
				}
			}
			// Masked unless asked in clear; never the account unless logged in clear.
			_, body, _ := traceOf(t, refA, false)
			if strings.Contains(body, "192.0.2.70") || !strings.Contains(body, "192.0.2.*") || strings.Contains(body, "ann@example.com") {
				t.Errorf("trace without clear shows the address or the account: %s", body)
			}

			other, _ := recovery.NewKeyring([]byte(strings.Repeat("x", 32)))
			forged := other.TraceRef(flowB) // the right flow ID, the wrong secret
			_, unknownBody, _ := traceOf(t, "00000-00000", false)
			for _, ref := range []string{forged, "00000-00000", strings.ToLower(strings.ReplaceAll(forged, "-", ""))} {
				status, body, _ := traceOf(t, ref, true)
				if status != http.StatusNotFound || body != unknownBody {
					t.Errorf("trace %s: %d %s, want the one 404 %s", ref, status, body, unknownBody)
				}
			}
			for _, bad := range []string{"K7QMU-2XD9T", "..%2F..%2Flocks", "K7QMX-2XD9T-X"} {
				if status, body, _ := traceOf(t, bad, false); status != http.StatusBadRequest {
					t.Errorf("trace %s: %d %s, want 400", bad, status, body)
				}
			}
		})
	}
}

// TestTraceHoldsNoSecret runs a flow to its end, a reset with a password,
// and a locked account, then reads every trail in clear: none holds a
// code, a token, a password, a flow ID or a full phone number.
func TestTraceHoldsNoSecret(t *testing.T) {
	const (
		account  = "sam@example.com"
		phone    = "+31612345672"
		password = "N3w-s3cret-passw0rd!"
	)
	g := newOpsGateway(t, map[string]string{account: phone}, func(h *Handler) {
		h.LogAccounts = logAccountsClear
		h.Lockout = &Threshold{Failures: 2, Window: caddy1h, Duration: caddy1h}
	})
	flow := g.start(account, "192.0.2.72")
	code := g.code(flow)
	w := g.verify(flow, code, "192.0.2.72", http.StatusOK)
	var v struct {
		ResetToken string `json:"reset_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.ResetToken == "" {
		t.Fatalf("verify: %s", w.Body)
	}
	if w := g.post("/reset", "192.0.2.72", map[string]string{"reset_token": v.ResetToken, "password": password}); w.Code != http.StatusNoContent {
		t.Fatalf("reset: %d %s", w.Code, w.Body)
	}
	locked, lockCode := g.lock(account, "192.0.2.72", 2, http.StatusLocked)
	refused := g.post("/verify", "192.0.2.72", map[string]string{"flow": locked, "code": lockCode})
	refs := []string{g.h.svc.Keys.TraceRef(flow), g.h.svc.Keys.TraceRef(locked), referenceOf(t, refused.Body.Bytes())}
	// Through the admin API, as support reads it.
	if status, body, _ := traceOf(t, refs[1], true); status != http.StatusOK || !strings.Contains(body, recovery.EventAccountLocked) {
		t.Fatalf("trace %s: %d %s", refs[1], status, body)
	}
	trails := g.h.store.backend.(storage.Trails)
	g.close() // every SMS outcome is in: the notices too
	secrets := []string{code, lockCode, wrongCode(lockCode), v.ResetToken, password, phone, strings.TrimPrefix(phone, "+"), flow, locked}
	for _, ref := range refs {
		entries, err := trails.Trail(context.Background(), ref)
		raw, _ := json.Marshal(entries)
		body := string(raw)
		if err != nil || len(entries) == 0 {
			t.Fatalf("trail %s: %v %s", ref, err, body)
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("trace %s holds %q: %s", ref, s, body)
			}
		}
		if !strings.Contains(body, account) || !strings.Contains(body, "+31*****672") {
			t.Errorf("trace %s in clear under log_accounts clear lacks the account or the masked phone: %s", ref, body)
		}
	}
	entries, _ := trails.Trail(context.Background(), refs[0])
	raw, _ := json.Marshal(entries)
	if body := string(raw); !strings.Contains(body, recovery.EventResetForwarded) || !strings.Contains(body, `"reason":"notice"`) {
		t.Errorf("the finished flow's trail lacks its reset or its notice: %s", body)
	}
}

var caddy1h = caddy.Duration(time.Hour)

// blockingTrails is a store of trails whose writes wait until released.
type blockingTrails struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (b *blockingTrails) AppendTrail(_ context.Context, entries []storage.TrailEntry, _ time.Duration) error {
	b.entered <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.got += len(entries)
	b.mu.Unlock()
	return nil
}

func (b *blockingTrails) Trail(context.Context, string) ([]storage.TrailEntry, error) {
	return nil, nil
}

// TestTracerDropsWhenFull holds the store's first write: the queue fills,
// what does not fit is dropped and counted at once, and nothing waits; once
// the store takes writes again, every queued entry is written.
func TestTracerDropsWhenFull(t *testing.T) {
	t.Parallel()
	store := &blockingTrails{entered: make(chan struct{}), release: make(chan struct{})}
	var mu sync.Mutex
	counts := map[string]int{}
	const size = 4
	tr := newTracer(store, time.Hour, size, clock.Real{}, zap.NewNop(), func(result string, n int) {
		mu.Lock()
		counts[result] += n
		mu.Unlock()
	})
	entry := storage.TrailEntry{Ref: "AAAAA-AAAAA", Event: "request_refused"}
	tr.add(entry)
	<-store.entered // the writer holds the first entry, in the store
	for range size + 3 {
		tr.add(entry) // never blocks: size fit, 3 are dropped
	}
	mu.Lock()
	if counts[traceDropped] != 3 {
		t.Errorf("dropped %d entries, want 3", counts[traceDropped])
	}
	mu.Unlock()
	go func() {
		for range store.entered {
		}
	}()
	close(store.release)
	if err := tr.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr.close()
	close(store.entered)
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.got != 1+size || counts[traceWritten] != 1+size {
		t.Errorf("store got %d entries, %d counted written; want %d", store.got, counts[traceWritten], 1+size)
	}
}
