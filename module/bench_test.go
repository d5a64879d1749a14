package module

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
)

// benchConfig loads, once per test binary, a Caddy config like the one a
// gateway runs in, as far as the handler sees it: an events app, which the
// http app would load, to emit security events to, and logs that are
// encoded, as in production, but discarded rather than printed. The events
// app has one subscription, to the SMS that went out, which wakes flows
// when its codes are in the outbox.
var benchConfig = sync.OnceValue(func() error {
	return caddy.Load([]byte(`{
		"admin": {"disabled": true, "config": {"persist": false}},
		"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
		"apps": {"events": {"subscriptions": [{
			"events": ["sms_recovery_sms_sent"],
			"handlers": [{"handler": "`+benchSentHandler+`"}]
		}]}}
	}`), true)
})

func init() {
	caddy.RegisterModule(benchSentEvents{})
}

// benchSentHandler is the events handler that broadcasts benchSent.
const benchSentHandler = "sms_recovery_bench_sent"

// benchSent is broadcast whenever a benchmark gateway has sent an SMS: its
// line is in the outbox by then.
var benchSent = wake.New()

// benchSentCount counts the SMS every benchmark gateway has sent.
var benchSentCount atomic.Int64

type benchSentEvents struct{}

func (benchSentEvents) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "events.handlers." + benchSentHandler,
		New: func() caddy.Module { return new(benchSentEvents) },
	}
}

func (benchSentEvents) Handle(context.Context, caddy.Event) error {
	benchSentCount.Add(1)
	benchSent.Broadcast()
	return nil
}

var _ caddyevents.Handler = benchSentEvents{}

// benchQueue is the SMS queue of the benchmark gateways. /start queues an
// SMS; once the queue is full, further ones are dropped, which is the
// handler's real behaviour under a flood.
const benchQueue = 4096

// benchBackends are the storage backends the benchmarks run on.
var benchBackends = []struct {
	name    string
	storage func(b *testing.B) json.RawMessage
}{
	{"memory", func(*testing.B) json.RawMessage { return memoryStorage(1 << 20) }},
	{"redis", func(b *testing.B) json.RawMessage { return redisTestStorage(b) }},
}

// benchGateway is a provisioned gateway the benchmarks call as Caddy does.
type benchGateway struct {
	h       *Handler
	outbox  *benchOutbox
	clients sync.Pool // of *benchClient
}

// newBenchGateway provisions a gateway on storage whose limits are far
// above what a benchmark reaches, so that it measures the flow, not 429s.
func newBenchGateway(b testing.TB, storage json.RawMessage) *benchGateway {
	b.Helper()
	if err := benchConfig(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.ActiveContext())
	b.Cleanup(cancel)

	dir := b.TempDir()
	phones := filepath.Join(dir, "phones.json")
	if err := os.WriteFile(phones, []byte(`{"alice@example.com": "+31612345678"}`), 0o600); err != nil {
		b.Fatal(err)
	}
	outbox := filepath.Join(dir, "outbox.jsonl")
	limits := map[string]Limit{}
	for _, scope := range limitScopes {
		limits[scope] = Limit{Events: 1 << 40, Window: caddy.Duration(time.Hour)}
	}
	h := &Handler{
		PublicURL:    "https://mail.example.com",
		DirectoryRaw: fileDirectory(phones),
		SenderRaw:    outboxSender(outbox),
		SMSQueue:     benchQueue,
		Limits:       limits,
		Secrets:      []string{benchRandom(b, 32)},
		StorageRaw:   storage,
		Forward:      &Forward{KeyID: "gw1", HMACKey: benchRandom(b, 64)},
		// Every share and ceiling on, as high as the limits: a start
		// counts all of its plan.
		SMSShare: &SMSShare{Country: 50},
		SMSSpend: &SMSSpend{DefaultPrice: "0.01", Daily: "1000000000", Monthly: "1000000000"},
	}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			b.Errorf("Cleanup: %v", err)
		}
	})
	return &benchGateway{h: h, outbox: &benchOutbox{path: outbox, codes: map[string]string{}}}
}

// benchRandom returns the base64 of n random bytes.
func benchRandom(b testing.TB, n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf)
}

var benchNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// benchClient is one request prepared the way Caddy's server hands it
// over (the request context PrepareRequest builds, the client IP in its
// vars) and a response writer, both served again and again. A benchmark
// thus counts what the handler does and causes, not the building of a
// request and a recorder, which a real server does in its own way.
type benchClient struct {
	r    *http.Request
	body bytes.Reader
	w    benchRecorder
}

// benchRecorder is a response writer that keeps the status and the body
// and can be reset; unlike httptest's recorder it does not copy the
// headers when the status is written.
type benchRecorder struct {
	hdr  http.Header
	code int
	body bytes.Buffer
}

func (w *benchRecorder) Header() http.Header { return w.hdr }

func (w *benchRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *benchRecorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *benchRecorder) reset() {
	clear(w.hdr)
	w.code = 0
	w.body.Reset()
}

func newBenchClient() *benchClient {
	c := &benchClient{w: benchRecorder{hdr: http.Header{}}}
	r := httptest.NewRequest(http.MethodPost, "/recovery/start", &c.body)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), &c.w, nil)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, "203.0.113.7")
	c.r = r
	return c
}

// benchResponse is what a benchmark request was answered.
type benchResponse struct {
	Code int
	Body []byte
}

// serve serves one JSON request to path with body. What it returns is
// valid until the client's next request.
func (c *benchClient) serve(h *Handler, path string, body []byte) benchResponse {
	c.w.reset()
	c.body.Reset(body)
	c.r.URL.Path = path
	// The handler strips signature headers; Content-Type is set afresh.
	c.r.Header["Content-Type"] = benchJSON
	if err := h.ServeHTTP(&c.w, c.r, benchNext); err != nil {
		c.w.code = http.StatusInternalServerError
	}
	return benchResponse{Code: c.w.code, Body: c.w.body.Bytes()}
}

var benchJSON = []string{"application/json"}

// post serves one JSON request from a client of the gateway's pool, from
// which each goroutine of a parallel benchmark takes one of its own.
func (g *benchGateway) post(path string, body []byte) benchResponse {
	c, _ := g.clients.Get().(*benchClient)
	if c == nil {
		c = newBenchClient()
	}
	resp := c.serve(g.h, path, body)
	if resp.Code != http.StatusAccepted && resp.Code != http.StatusOK {
		resp.Body = bytes.Clone(resp.Body) // for the error message
	}
	g.clients.Put(c)
	return resp
}

// benchFlow is a started flow and the code its SMS carried.
type benchFlow struct{ id, code string }

// flows starts n flows and returns them with their codes. It waits for
// each batch of SMS to reach the outbox before starting the next, so that
// none is dropped from a full queue.
func (g *benchGateway) flows(b *testing.B, n int) []benchFlow {
	b.Helper()
	flows := make([]benchFlow, 0, n)
	for len(flows) < n {
		ids := make([]string, min(n-len(flows), benchQueue/2))
		for i := range ids {
			w := g.post("/recovery/start", benchAlice)
			var started startResponse
			if w.Code != http.StatusAccepted || json.Unmarshal(w.Body, &started) != nil {
				b.Fatalf("start: %d %s", w.Code, w.Body)
			}
			ids[i] = started.Flow
		}
		for _, id := range ids {
			var code string
			ok := benchSent.Await(30*time.Second, func() bool {
				var ok bool
				code, ok = g.outbox.code(b, id)
				return ok
			})
			if !ok {
				b.Fatalf("no SMS for flow %s within 30s", id)
			}
			flows = append(flows, benchFlow{id: id, code: code})
		}
	}
	return flows
}

// benchOutbox reads the outbox file as it grows.
type benchOutbox struct {
	path   string
	offset int64
	rest   []byte // an incomplete last line
	codes  map[string]string
}

var (
	benchFlowInLink = regexp.MustCompile(`[?&]flow=([A-Za-z0-9_-]+)`)
	benchCodeLine   = regexp.MustCompile(`(?m)^@[^ ]+ #(\d+)$`)
)

// code returns the code sent for flow, reading what was added to the file.
func (o *benchOutbox) code(b *testing.B, flow string) (string, bool) {
	if code, ok := o.codes[flow]; ok {
		return code, true
	}
	f, err := os.Open(o.path)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	added, err := io.ReadAll(io.NewSectionReader(f, o.offset, 1<<40))
	if err != nil {
		b.Fatal(err)
	}
	o.offset += int64(len(added))
	data := append(o.rest, added...)
	end := bytes.LastIndexByte(data, '\n') + 1
	o.rest = append([]byte(nil), data[end:]...)
	for line := range bytes.Lines(data[:end]) {
		var m struct{ Body string }
		if err := json.Unmarshal(line, &m); err != nil {
			b.Fatalf("outbox line %q: %v", line, err)
		}
		id, code := benchFlowInLink.FindStringSubmatch(m.Body), benchCodeLine.FindStringSubmatch(m.Body)
		if id != nil && code != nil {
			o.codes[id[1]] = code[1]
		}
	}
	code, ok := o.codes[flow]
	return code, ok
}

// benchModes runs op serially, for the latency of one request, and from
// GOMAXPROCS goroutines, for throughput under contention.
func benchModes(b *testing.B, setup func(b *testing.B) func(i int) error) {
	b.Run("serial", func(b *testing.B) {
		op := setup(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		op := setup(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(int(next.Add(1) - 1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// The bodies of the start benchmarks.
var (
	benchAlice  = []byte(`{"account":"alice@example.com"}`)
	benchNobody = []byte(`{"account":"nobody@example.com"}`)
)

// BenchmarkStart measures POST /start for an account with a phone: limits
// checked, flow stored, SMS queued (and written by the outbox in the
// background, or dropped once the queue is full).
func BenchmarkStart(b *testing.B) {
	benchStart(b, benchAlice)
}

// BenchmarkStartDelivered counts what POST /start for an account with a
// phone costs with its SMS, none dropped: after every 1,024 starts it waits,
// the timer running, until each of their codes has gone out, so allocs/op
// holds the request and its delivery. Its ns/op includes the 20 ms each
// batch's last SMS is held back: read BenchmarkStart for time.
func BenchmarkStartDelivered(b *testing.B) {
	g := newBenchGateway(b, memoryStorage(1<<20))
	const batch = 1024 // well within benchQueue
	sent0 := benchSentCount.Load()
	wait := func(n int) {
		if !benchSent.Await(30*time.Second, func() bool { return benchSentCount.Load()-sent0 >= int64(n) }) {
			b.Fatalf("%d of %d SMS sent within 30s", benchSentCount.Load()-sent0, n)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if w := g.post("/recovery/start", benchAlice); w.Code != http.StatusAccepted {
			b.Fatalf("start: %d %s", w.Code, w.Body)
		}
		if (i+1)%batch == 0 {
			wait(i + 1)
		}
	}
	wait(b.N)
}

// BenchmarkStartUnknownAccount is BenchmarkStart for an account the
// directory does not know: the two must cost the same (no enumeration).
func BenchmarkStartUnknownAccount(b *testing.B) {
	benchStart(b, benchNobody)
}

// benchStart measures POST /start with body on each backend.
func benchStart(b *testing.B, body []byte) {
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			benchModes(b, func(b *testing.B) func(int) error {
				g := newBenchGateway(b, backend.storage(b))
				return func(int) error {
					if w := g.post("/recovery/start", body); w.Code != http.StatusAccepted {
						return fmt.Errorf("start: %d %s", w.Code, w.Body)
					}
					return nil
				}
			})
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			benchModes(b, func(b *testing.B) func(int) error {
				g := newBenchGateway(b, backend.storage(b))
				flows := g.flows(b, b.N)
				bodies := make([][]byte, len(flows))
				for i, f := range flows {
					bodies[i] = fmt.Appendf(nil, `{"flow":%q,"code":%q}`, f.id, f.code)
				}
				return func(i int) error {
					if w := g.post("/recovery/verify", bodies[i]); w.Code != http.StatusOK {
						return fmt.Errorf("verify: %d %s", w.Code, w.Body)
					}
					return nil
				}
			})
		})
	}
}
