package module

import (
	"encoding/json"
	"fmt"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
)

// TestAdminImposeLock has support lock an account's recovery through the
// admin API, on memory and on Redis: the right code then answers 423
// account_locked, and so does a start; the listing shows the lock masked,
// and in clear when asked; a lift makes the code work again. The phone gets
// one notice saying support locked it, however many times and however
// concurrently support asks; an account the directory does not know gets
// the same answer and no SMS.
//
// Not parallel: the admin API imposes a lock in the store of every
// gateway of the process, whose observers then count it, and the tests of
// exact metrics run in parallel. Top-level tests that are not parallel run
// before any parallel one starts.
func TestAdminImposeLock(t *testing.T) {
	for _, st := range []struct {
		name    string
		storage func(*testing.T) json.RawMessage
	}{
		{"memory", func(*testing.T) json.RawMessage { return ownMemoryStorage() }},
		{"redis", func(t *testing.T) json.RawMessage { return redisTestStorage(t) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			var (
				account = "imposed-" + st.name + "@example.com"
				timed   = "imposed-timed-" + st.name + "@example.com"
				unknown = "imposed-unknown-" + st.name + "@example.com"
				phone   = map[string]string{"memory": "+31612345701", "redis": "+31612345702"}[st.name]
				phone2  = map[string]string{"memory": "+31612345703", "redis": "+31612345704"}[st.name]
			)
			const ip = "192.0.2.70"
			g := newOpsGateway(t, map[string]string{account: phone, timed: phone2}, func(h *Handler) {
				h.StorageRaw = st.storage(t)
			})
			flow := g.start(account, ip)
			code := g.code(flow)

			// Support locks it, naming the account as the person gives it.
			put := func(target string) map[string]any {
				t.Helper()
				status, hdr, body := opsAdmin(t, http.MethodPut, target)
				if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Fatalf("PUT %s: %d %s", target, status, body)
				}
				var out map[string]any
				if err := json.Unmarshal(body, &out); err != nil {
					t.Fatal(err)
				}
				// The lock and its notice have a support reference of their own.
				if ref, _ := out["reference"].(string); len(ref) != recovery.TraceRefLen+1 {
					t.Errorf("PUT %s answered reference %q", target, out["reference"])
				}
				delete(out, "reference")
				return out
			}
			got := put("/sms-recovery/locks/account/%20" + strings.ToUpper(account))
			if want := (map[string]any{"kind": "account", "key": account, "permanent": true}); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("PUT answered %v, want %v", got, want)
			}

			// The right code is refused, and so is a new start.
			w := g.verify(flow, code, ip, http.StatusLocked)
			var refusal map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &refusal); err != nil || refusal["error"] != "account_locked" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("verify while locked: %s %v", w.Body, w.Header())
			}
			if w := g.post("/start", ip, map[string]string{"account": account}); w.Code != http.StatusLocked {
				t.Fatalf("start while locked: %d %s", w.Code, w.Body)
			}

			// Listed masked, and in clear when asked.
			status, _, body := opsAdmin(t, http.MethodGet, admin.LocksPath)
			masked := "i*****@example.com"
			if status != http.StatusOK || strings.Contains(string(body), account) || !strings.Contains(string(body), `"key":"`+masked+`"`) {
				t.Fatalf("masked listing: %d %s, want %s and never %s", status, body, masked, account)
			}
			l, ok := findLock(listLocks(t), recovery.KindAccount, account)
			if !ok || !l.Permanent || l.Reason != recovery.ReasonSupport || !l.Until.IsZero() {
				t.Fatalf("listing in clear: %+v, %v; want support's lock until lifted", l, ok)
			}

			// Asked again, at once and one after another: the lock in force
			// stays, and the phone hears of it once.
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					if status, _, body := opsAdmin(t, http.MethodPut, "/sms-recovery/locks/account/"+account); status != http.StatusOK {
						t.Errorf("concurrent PUT: %d %s", status, body)
					}
				})
			}
			wg.Wait()
			put("/sms-recovery/locks/account/" + account)

			// A lock for a time, on another account.
			before := time.Now()
			got = put("/sms-recovery/locks/account/" + timed + "?for=2h")
			until, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["until"]))
			if err != nil || got["permanent"] != nil || until.Before(before.Add(2*time.Hour-time.Second)) || until.After(time.Now().Add(2*time.Hour+time.Second)) {
				t.Fatalf("PUT ?for=2h answered %v, want a lock until 2h from now", got)
			}
			// An account the directory does not know: the same answer.
			got = put("/sms-recovery/locks/account/" + unknown)
			if want := (map[string]any{"kind": "account", "key": unknown, "permanent": true}); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("PUT of an unknown account answered %v, want %v", got, want)
			}
			for _, bad := range []string{"?for=soon", "?for=0", "?for=-1h", "?for=500ms"} {
				if status, _, body := opsAdmin(t, http.MethodPut, "/sms-recovery/locks/account/"+account+bad); status != http.StatusBadRequest || !strings.Contains(string(body), `"error":"for: `) {
					t.Errorf("PUT %s: %d %s, want 400", bad, status, body)
				}
			}

			// Support lifts it: the same code now works.
			if status, _, body := opsAdmin(t, http.MethodDelete, "/sms-recovery/locks/account/"+account); status != http.StatusOK {
				t.Fatalf("lift: %d %s", status, body)
			}
			g.verify(flow, code, ip, http.StatusOK)
			if _, ok := findLock(listLocks(t), recovery.KindAccount, account); ok {
				t.Errorf("the lock on %s is listed after the lift", account)
			}

			// Each call is a security event naming who asked.
			imposed := loggedEvents(g.logs, admin.EventLockImposed)
			if len(imposed) != 14 {
				t.Errorf("%d lock_imposed log entries, want 14 (12 on %s, one on each other account)", len(imposed), account)
			}
			for _, f := range imposed {
				if f["scope"] != limiter.ScopeLockout || !strings.Contains(fmt.Sprint(f["reason"]), opsAdminIP) {
					t.Errorf("lock_imposed entry %v, want scope lockout and who asked", f)
				}
			}

			// Every SMS is out once the queue is drained: the code, and one
			// notice to each known account's phone.
			g.close()
			var notices []string
			for _, m := range g.sent() {
				if strings.Contains(m.Body, "support has locked") {
					notices = append(notices, m.To)
				}
			}
			if len(notices) != 2 || notices[0] != phone || notices[1] != phone2 {
				t.Errorf("lock notices went to %v, want one to %s and one to %s", notices, phone, phone2)
			}
			if n := len(g.sent()); n != 3 {
				t.Errorf("%d SMS in the outbox, want 3: the code and two notices", n)
			}
		})
	}
}

// TestAdminImposeLockNoticeOff: with notify_on_lock off, an imposed lock
// texts no one. Not parallel, for the reason TestAdminImposeLock is not.
func TestAdminImposeLockNoticeOff(t *testing.T) {
	const account = "imposed-quiet@example.com"
	g := newOpsGateway(t, map[string]string{account: "+31612345705"}, func(h *Handler) {
		off := false
		h.NotifyOnLock = &off
	})
	if status, _, body := opsAdmin(t, http.MethodPut, "/sms-recovery/locks/account/"+account); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	g.close()
	if sent := g.sent(); len(sent) != 0 {
		t.Errorf("sent %v, want nothing", sent)
	}
}
