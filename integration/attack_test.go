package integration

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

// Each test here is an attack on one promise of the gateway, as an attacker
// with many addresses would make it. The client address is Caddy's, from a
// trusted proxy's X-Forwarded-For.

const trustLoopback = `servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}`

// postFrom posts as the client at ip.
func (c *client) postFrom(ip, path, body string) answer {
	c.t.Helper()
	return c.post(path, body, "X-Forwarded-For", ip)
}

func (c *client) startFrom(ip, account string) answer {
	c.t.Helper()
	return c.postFrom(ip, "/recovery/start", fmt.Sprintf(`{"account":%q}`, account))
}

func (c *client) verifyFrom(ip, flow, code string) answer {
	c.t.Helper()
	return c.postFrom(ip, "/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code))
}

// TestLockSurvivesFloodOfSmallStore locks alice, then floods a store of the
// smallest size from 130 addresses that each lock a decoy account. The
// flood meets a full store and is refused; alice's lock holds.
func TestLockSurvivesFloodOfSmallStore(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	// A store's size names it: no other test uses one this small.
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback, Store: 100, Extra: "lockout 3 1h 30m"})

	const me = "203.0.113.200"
	flow := c.startFrom(me, alice).str("flow")
	code := c.codeFor(1)
	for range 3 {
		c.verifyFrom(me, flow, wrongCode(code))
	}
	if a := c.startFrom(me, alice); a.Status != http.StatusLocked {
		t.Fatalf("alice after 3 wrong codes: %d %s", a.Status, a.Raw)
	}

	refused := 0
	for i := range 130 {
		ip := fmt.Sprintf("198.51.%d.%d", 100+i/200, i%200+1)
		decoy := fmt.Sprintf("decoy%d@example.com", i)
		f := c.startFrom(ip, decoy)
		if f.Status == http.StatusServiceUnavailable && f.Header.Get("Retry-After") != "" {
			refused++ // the flow table is full: new starts wait
			continue
		}
		if f.Status != http.StatusAccepted {
			t.Fatalf("flood start %d: %d %s", i, f.Status, f.Raw)
		}
		for range 3 {
			a := c.verifyFrom(ip, f.str("flow"), "000000")
			switch a.Status {
			case http.StatusBadRequest, http.StatusLocked, http.StatusGone:
			case http.StatusServiceUnavailable:
				if a.Header.Get("Retry-After") == "" {
					t.Fatalf("503 without Retry-After: %s", a.Raw)
				}
				refused++
			default:
				t.Fatalf("flood verify %d: %d %s", i, a.Status, a.Raw)
			}
		}
	}
	if refused == 0 {
		t.Error("the flood of 130 addresses fit in a store of 100: nothing was refused")
	}
	a := c.startFrom(me, alice)
	if a.Status != http.StatusLocked || a.str("error") != "account_locked" {
		t.Fatalf("alice after the flood: %d %s, want her lock to hold", a.Status, a.Raw)
	}
	if m := metrics(t); !strings.Contains(m, `event="state_full"`) {
		t.Error("/metrics does not count the refusals of a full store")
	}
}

// TestPendingFlowSurvivesFlood starts a person's flow, then floods a flow
// table of 101 nine times over from 300 addresses: the starts past its
// room are refused with 503 and Retry-After, and the person's code still
// verifies.
func TestPendingFlowSurvivesFlood(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback, Store: 101,
		Extra: "limit start_account 1000 1h\n\t\tlimit sms_global 1000 1h"})
	const me = "203.0.113.7"
	flow := c.startFrom(me, alice).str("flow")
	code := c.codeFor(1)
	// Eight at a time, as a few connections of a botnet's proxy would.
	var refused atomic.Int64
	addrs := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for a := range addrs {
				ip := fmt.Sprintf("198.18.%d.%d", a/200, a%200+1)
				if a%3 == 0 {
					ip = fmt.Sprintf("2001:db8:%x::1", a)
				}
				for i := range 3 {
					r := c.startFrom(ip, fmt.Sprintf("flood%d-%d@example.com", a, i))
					if r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "" {
						refused.Add(1)
					} else if r.Status != http.StatusAccepted {
						t.Errorf("flood start: %d %s", r.Status, r.Raw)
					}
				}
			}
		})
	}
	for a := range 300 {
		addrs <- a
	}
	close(addrs)
	wg.Wait()
	if n := refused.Load(); n != 900-100 {
		t.Errorf("flood starts refused: %d, want %d (all past the table's room)", n, 900-100)
	}
	a := c.verifyFrom(me, flow, code)
	if a.Status != http.StatusOK || a.str("reset_token") == "" {
		t.Fatalf("the person's code after the flood: %d %s, want 200 and a token", a.Status, a.Raw)
	}
}

// TestConcurrentGuessesAcrossFlowsNeverPassLockout sends 200 wrong codes at
// once, spread over 40 flows of one account and 20 addresses: exactly 5 are
// compared (four answer 400 and the fifth locks), the rest meet the lock.
func TestConcurrentGuessesAcrossFlowsNeverPassLockout(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			up := startUpstream(t, "127.0.0.1:0")
			s := &site{Upstream: up.addr, Global: trustLoopback,
				Extra: "lockout 5 1h 30m\n\t\tip_block 1000 1h 1h\n\t\tlimit verify_ip 1000 1h\n\t\tlimit start_account 1000 1h\n\t\tlimit start_ip 1000 1h\n\t\tlimit sms_global 1000 1h"}
			if backend == "redis" {
				s.Storage = redisStorage(t)
			}
			c := start(t, s)
			flows := make([]string, 40)
			for i := range flows {
				flows[i] = c.startFrom(fmt.Sprintf("192.0.2.%d", i+1), alice).str("flow")
			}
			statuses := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			begin := make(chan struct{})
			for i := range 200 {
				wg.Go(func() {
					<-begin
					a := c.verifyFrom(fmt.Sprintf("198.51.100.%d", i%20+1), flows[i%40], "000000")
					mu.Lock()
					statuses[a.Status]++
					mu.Unlock()
				})
			}
			close(begin)
			wg.Wait()
			if statuses[http.StatusBadRequest] != 4 || statuses[http.StatusLocked] != 196 {
				t.Fatalf("200 concurrent wrong codes at lockout 5: statuses %v, want 4 × 400 and 196 × 423", statuses)
			}
		})
	}
}

// TestGuessesCappedUntilSupportLifts makes 100 wrong codes in a row: the
// account's recovery then stays locked, with no end, until support lifts
// it through the admin API.
func TestGuessesCappedUntilSupportLifts(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, &site{Upstream: up.addr, Global: trustLoopback,
		Extra: "lockout 100 1h 1m\n\t\tip_block 1000 1h 1h\n\t\tlimit verify_ip 1000 1h\n\t\tlimit start_account 1000 1h\n\t\tlimit start_ip 1000 1h\n\t\tlimit start_phone 1000 1h\n\t\tlimit sms_global 1000 1h"})
	wrong := 0
	var last answer
	for f := 0; wrong < 100; f++ {
		flow := c.startFrom("192.0.2.10", alice).str("flow")
		for range 5 {
			last = c.verifyFrom("192.0.2.10", flow, "000000")
			wrong++
		}
	}
	if last.Status != http.StatusLocked || !strings.Contains(last.str("message"), "Support can unlock it") {
		t.Fatalf("100th wrong code: %d %s, want a lock only support lifts", last.Status, last.Raw)
	}
	a := c.startFrom("203.0.113.9", alice)
	if a.Status != http.StatusLocked || a.str("support") == "" || a.Header.Get("Retry-After") == "" {
		t.Fatalf("start after 100 wrong codes: %d %s", a.Status, a.Raw)
	}
	list := adminGet(t, "/sms-recovery/locks")
	if !strings.Contains(list, `"permanent":true`) || !strings.Contains(list, `"strikes":100`) {
		t.Fatalf("admin list does not show the lasting lock: %s", list)
	}
	liftAccount(t, alice)
	flow := c.startFrom("203.0.113.9", alice).str("flow")
	if a := c.verifyFrom("203.0.113.9", flow, c.codeOf(flow)); a.Status != http.StatusOK {
		t.Fatalf("the right code after the lift: %d %s", a.Status, a.Raw)
	}
}

// TestLockNoticeOncePerLock locks bob's recovery: his phone is told once, in
// German, with the support text and no code, however many refused tries
// follow; a second lock tells him again; notify_on_lock off tells nobody.
func TestLockNoticeOncePerLock(t *testing.T) {
	const bob = "bob@example.com"
	up := startUpstream(t, "127.0.0.1:0")
	name := fmt.Sprintf("Notice Mail %d", stores.Add(1)) // counters outlive a run
	c := start(t, &site{Upstream: up.addr, SiteName: name, Extra: "lockout 3 1h 30m"})
	lock := func() {
		t.Helper()
		flow := c.startFlow(bob)
		for range 3 {
			c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"000000"}`, flow))
		}
		for range 5 { // refused: the lock holds
			if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"000000"}`, flow)); a.Status != http.StatusLocked {
				t.Fatalf("verify while locked: %d %s", a.Status, a.Raw)
			}
		}
	}
	lock()
	// The event is counted before the answer goes out, so this count is final.
	if m := metrics(t); !strings.Contains(m, `caddy_sms_recovery_events_total{event="lock_notice",scope="",site="`+name+`"} 1`) {
		t.Fatalf("lock notices after one lock: want 1 in /metrics")
	}
	notice := c.noticeAfterCode()
	if notice.To != "+4915123456789" || !strings.Contains(notice.Body, "gesperrt") ||
		!strings.Contains(notice.Body, "Call +1 555 0100") || codeLine.MatchString(notice.Body) {
		t.Fatalf("lock notice to %s: %q, want German, with support and no code", notice.To, notice.Body)
	}
	liftAccount(t, bob)
	lock()
	if m := metrics(t); !strings.Contains(m, `caddy_sms_recovery_events_total{event="lock_notice",scope="",site="`+name+`"} 2`) {
		t.Fatal("lock notices after two locks: want 2 in /metrics")
	}

	quiet := fmt.Sprintf("Quiet Mail %d", stores.Add(1))
	off := site{Upstream: up.addr, SiteName: quiet, Extra: "lockout 3 1h 30m\n\t\tnotify_on_lock off"}
	c = start(t, &off)
	lock()
	if m := metrics(t); strings.Contains(m, `event="lock_notice",scope="",site="`+quiet+`"`) {
		t.Fatal("notify_on_lock off sent a lock notice")
	}
}

// liftAccount lifts an account's lock as support does, through the admin API.
func liftAccount(t *testing.T, account string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, admin+"/sms-recovery/locks/account/"+url.PathEscape(account), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("admin lift of %s: %d", account, res.StatusCode)
	}
}

func metrics(t *testing.T) string {
	t.Helper()
	return adminGet(t, "/metrics")
}

// metricValue returns the value of one series (its name and labels, as
// Prometheus writes them) in a /metrics body, or 0 when it is not there
// yet. Counters are process-wide and outlive a test's Caddy config, so
// tests compare values before and after, which also holds when the suite
// runs more than once in a process (go test -count=2).
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

func adminGet(t *testing.T, path string) string {
	t.Helper()
	res, err := http.Get(admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return string(body)
}

// redisStorage returns storage and secret lines for a Redis of the test's
// own prefix, whose keys go when t ends. It skips t when Redis does not
// answer (fails it when CI=true).
func redisStorage(t *testing.T) string {
	t.Helper()
	prefix := redistest.Prefix(t, redistest.Client(t))
	secret := make([]byte, 32)
	rand.Read(secret)
	// The test server keeps nothing on disk, and is meant to: the opt-in
	// says so.
	return fmt.Sprintf("storage redis %s {\n\t\t\tprefix %s\n\t\t\tallow_volatile\n\t\t}\n\t\tsecret %s", redistest.URL(), prefix, base64.StdEncoding.EncodeToString(secret))
}
