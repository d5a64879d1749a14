package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// messageBird is a stand-in for MessageBird's REST API (POST /messages),
// answering the n-th request (from 1) with respond.
type messageBird struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, m mbMessage)

	mu      sync.Mutex
	msgs    []mbMessage
	auth    []string
	arrived chan struct{} // closed and replaced at each request
}

type mbMessage struct {
	Originator string   `json:"originator"`
	Body       string   `json:"body"`
	Recipients []string `json:"recipients"`
	DataCoding string   `json:"datacoding"`
	Validity   int      `json:"validity"`
	Reference  string   `json:"reference"`
}

func newMessageBird(t *testing.T, respond func(n int, w http.ResponseWriter, m mbMessage)) *messageBird {
	t.Helper()
	mb := &messageBird{respond: respond, arrived: make(chan struct{})}
	mb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m mbMessage
		if r.Method != http.MethodPost || r.URL.Path != "/messages" || json.NewDecoder(r.Body).Decode(&m) != nil {
			mbError(w, http.StatusBadRequest, 21, "Bad request")
			return
		}
		mb.mu.Lock()
		mb.msgs = append(mb.msgs, m)
		mb.auth = append(mb.auth, r.Header.Get("Authorization"))
		n := len(mb.msgs)
		close(mb.arrived)
		mb.arrived = make(chan struct{})
		mb.mu.Unlock()
		mb.respond(n, w, m)
	}))
	t.Cleanup(mb.Close)
	return mb
}

func (mb *messageBird) requests() []mbMessage {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]mbMessage(nil), mb.msgs...)
}

// waitRequests waits until the fake has had n requests, woken by each
// request, or gives up after within.
func (mb *messageBird) waitRequests(n int, within time.Duration) []mbMessage {
	timeout := time.After(within)
	for {
		mb.mu.Lock()
		got, arrived := len(mb.msgs), mb.arrived
		mb.mu.Unlock()
		if got >= n {
			return mb.requests()
		}
		select {
		case <-arrived:
		case <-timeout:
			return mb.requests()
		}
	}
}

// settleMessageBird reloads s with the outbox sender instead. The reload
// drains the MessageBird queue before it returns, so whatever requests its
// messages were going to make have been made: a count taken after it is
// final, with no sleep that hopes.
func settleMessageBird(t *testing.T, s *site) {
	t.Helper()
	settled := *s
	settled.SMS, settled.Outbox = "", newOutbox(t)
	reload(t, settled)
}

// mbCreated answers as MessageBird does for an accepted message.
func mbCreated(w http.ResponseWriter, m mbMessage) {
	items := []map[string]any{}
	for _, r := range m.Recipients {
		n, _ := strconv.ParseInt(r, 10, 64)
		items = append(items, map[string]any{"recipient": n, "status": "sent", "statusDatetime": time.Now().UTC().Format(time.RFC3339)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"id": "e8077d803532c0b5937c639b60216938", "href": "https://rest.messagebird.com/messages/e8077d803532c0b5937c639b60216938",
		"direction": "mt", "type": "sms", "originator": m.Originator, "body": m.Body, "reference": m.Reference,
		"validity": m.Validity, "gateway": 10, "typeDetails": map[string]any{}, "datacoding": m.DataCoding, "mclass": 1,
		"scheduledDatetime": nil, "createdDatetime": time.Now().UTC().Format(time.RFC3339),
		"recipients": map[string]any{"totalCount": len(items), "totalSentCount": len(items), "totalDeliveredCount": 0,
			"totalDeliveryFailedCount": 0, "items": items},
	})
}

// distinctReferences counts the messages among requests: a message tried
// again carries the same reference.
func distinctReferences(requests []mbMessage) int {
	seen := map[string]bool{}
	for _, m := range requests {
		seen[m.Reference] = true
	}
	return len(seen)
}

func mbError(w http.ResponseWriter, status, code int, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%d,"description":%q,"parameter":null}]}`, code, description)
}

func messageBirdSMS(endpoint, key string) string {
	return fmt.Sprintf("sms messagebird {\n\t\t\taccess_key %s\n\t\t\toriginator ExampleMail\n\t\t\tendpoint %s\n\t\t}", key, endpoint)
}

var mbCode = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)

func TestMessageBirdRetriesUntilDelivered(t *testing.T) {
	mb := newMessageBird(t, func(n int, w http.ResponseWriter, m mbMessage) {
		if n <= 2 {
			mbError(w, http.StatusInternalServerError, 99, "internal error")
			return
		}
		mbCreated(w, m)
	})
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{Upstream: up.addr, SMS: messageBirdSMS(mb.URL, "live_test_key")}
	c := start(t, s)

	began := time.Now()
	flow := c.startFlow(alice)
	t.Logf("/start answered in %v while MessageBird was failing", time.Since(began))

	msgs := mb.waitRequests(3, 20*time.Second)
	if len(msgs) != 3 {
		t.Fatalf("MessageBird got %d requests, want 3 (two failures, one success)", len(msgs))
	}
	settleMessageBird(t, s)
	if n := len(mb.requests()); n != 3 {
		t.Fatalf("MessageBird got %d requests after delivery, want 3: the SMS went out twice", n)
	}
	m := msgs[2]
	if m.Recipients[0] != strings.TrimPrefix(phoneNL, "+") || m.Originator != "ExampleMail" || m.DataCoding != "plain" ||
		m.Validity != 300 || m.Reference == "" || strings.Contains(m.Reference, "612345678") {
		t.Errorf("message = %+v", m)
	}
	if mb.auth[2] != "AccessKey live_test_key" {
		t.Errorf("Authorization = %q", mb.auth[2])
	}
	code := mbCode.FindStringSubmatch(m.Body)
	if code == nil {
		t.Fatalf("no code line in %q", m.Body)
	}
	if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code[1])); a.Status != http.StatusOK {
		t.Fatalf("verify: %d %s", a.Status, a.Raw)
	}
}

func TestMessageBirdWrongKey(t *testing.T) {
	mb := newMessageBird(t, func(_ int, w http.ResponseWriter, _ mbMessage) {
		mbError(w, http.StatusUnauthorized, 2, "Request not allowed (incorrect access_key)")
	})
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	up := startUpstream(t, "127.0.0.1:0")
	s := &site{
		Upstream: up.addr, SiteName: "Wrong Key Mail",
		SMS:    messageBirdSMS(mb.URL, "wrong_key"),
		Global: fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logFile),
	}
	c := start(t, s)
	rejectedBefore := metricValue(t, metrics(t), `caddy_sms_recovery_sms_total{kind="code",result="rejected",site="Wrong Key Mail"}`)
	c.startFlow(alice)
	mb.waitRequests(1, 30*time.Second)
	settleMessageBird(t, s) // a retry storm, were there one, would be over
	if n := len(mb.requests()); n != 1 {
		t.Fatalf("MessageBird got %d requests for one SMS with a wrong key, want 1", n)
	}

	var rejected int
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line["event"] == "sms_rejected" {
			rejected++
			if line["provider_code"] != float64(2) || line["provider_status"] != float64(401) {
				t.Errorf("rejection logged as %v", line)
			}
		}
	}
	if rejected != 1 {
		t.Errorf("the rejection was logged %d times, want once", rejected)
	}
	series := `caddy_sms_recovery_sms_total{kind="code",result="rejected",site="Wrong Key Mail"}`
	if d := metricValue(t, metrics(t), series) - rejectedBefore; d != 1 {
		t.Errorf("%s rose by %v, want 1", series, d)
	}
}

func TestStartFloodWhileMessageBirdIsDown(t *testing.T) {
	block := make(chan struct{})
	mb := newMessageBird(t, func(_ int, w http.ResponseWriter, m mbMessage) {
		<-block // down: accepts the connection, never answers
		mbCreated(w, m)
	})
	var once sync.Once
	back := func() { once.Do(func() { close(block) }) }
	defer back()
	up := startUpstream(t, "127.0.0.1:0")
	const floodSite = "Flood Mail"
	c := start(t, &site{
		Upstream: up.addr, SiteName: floodSite,
		SMS: messageBirdSMS(mb.URL, "live_test_key") + "\n\t\tsms_queue 100",
		Extra: "limit start_ip 1000000 1h\n\t\tlimit start_account 1000000 1h\n\t\t" +
			"limit start_phone 1000000 1h\n\t\tlimit sms_global 1000000 1h",
	})
	c.startFlow(alice) // warm up
	outcomes0 := outcomesOf(floodSite)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	const n = 10_000
	began := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var peakGoroutines int
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice)); a.Status != http.StatusAccepted {
				t.Errorf("start: %d %s", a.Status, a.Raw)
			}
			if i%500 == 0 {
				mu.Lock()
				peakGoroutines = max(peakGoroutines, runtime.NumGoroutine())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("10,000 starts with MessageBird down in %v: goroutines %d before, %d at peak, %d after; heap grew %d KiB",
		took.Round(time.Millisecond), goroutinesBefore, peakGoroutines, runtime.NumGoroutine(), grown>>10)
	// The queue holds 100 messages and its workers one each, waiting on
	// MessageBird: what grows is bounded by that and by the 16 requests in
	// flight, not by the 10,000 starts. A worker's hanging call holds the
	// HTTP transport's goroutines for its connection, and here the
	// stand-in server's for the other end: up to four in all.
	if extra := runtime.NumGoroutine() - goroutinesBefore; extra > 4*sms.DefaultWorkers+50 {
		t.Errorf("%d more goroutines after the flood", extra)
	}
	// 10,000 flows of a few hundred bytes stay in the store (bounded by
	// max_entries); the SMS queue adds at most 100 messages.
	if grown > 32<<20 {
		t.Errorf("heap grew %d MiB", grown>>20)
	}
	// Each message MessageBird has seen is held by a worker. A flood that
	// outlasts the attempt timeout (a slow machine, -race) sees workers try
	// their message again, and the circuit breaker let a probe through,
	// so it is messages that are counted, not requests.
	if got := distinctReferences(mb.requests()); got > sms.DefaultWorkers+8 {
		t.Errorf("MessageBird saw %d messages while hanging; the queue should hold the rest", got)
	}

	// MessageBird comes back: every code still queued goes out, and each of
	// the starts ends in one outcome (sent, or dropped from the full queue).
	// Nothing is left for the next config (the next test's, or the next
	// pass's under go test -count) to wait out when this one drains.
	back()
	if !delivered.Await(2*time.Minute, func() bool { return outcomesOf(floodSite)-outcomes0 >= n }) {
		t.Errorf("%d of %d starts had an SMS outcome within 2 minutes of MessageBird coming back", outcomesOf(floodSite)-outcomes0, n)
	}
}
