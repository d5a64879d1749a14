// Command recovery-load drives a running sms_recovery gateway over HTTP and
// reports how it answered: the count of each status per route, the
// throughput, and the latency percentiles (p50, p90, p99, max).
//
// With the example gateway running (go run ./cmd/caddy run --config
// examples/Caddyfile, from the repository root):
//
//	go run ./cmd/recovery-load -mode start -n 2000 -c 16
//	go run ./cmd/recovery-load -mode mixed -n 2000 -c 16 -outbox sms-outbox.jsonl
//
// The timing subcommand runs a gateway of its own and measures whether the
// answer time of /start tells the kinds of account apart (see timing.go):
//
//	go run ./cmd/recovery-load timing -n 2000 -runs 3
//
// The compare subcommand runs plain Caddy and the gateway side by side from
// one Caddy binary and prints how the gateway compares (see compare.go):
//
//	go run ./cmd/recovery-load compare
//
// The modes:
//
//	start   POST /start for each account of -accounts in turn.
//	verify  first starts -n flows, unmeasured; then reads their codes from
//	        the outbox and measures POST /verify with the right code, once
//	        per flow that got one (unknown accounts get none).
//	mixed   alternates: POST /start, then POST /verify for a flow started
//	        earlier whose code has reached the outbox (or another start if
//	        none has yet).
//
// It stops by itself after -n measured requests or after -duration (which
// covers the whole run, verify's setup included), whichever comes first;
// requests the -duration cap cuts off are counted apart, not timed.
// Verifying needs the codes, so -outbox must name the development outbox
// file the gateway writes (sms outbox <path>), and the SMS text must hold
// the link with the flow (the built-in texts do).
//
// It is for load-testing one's own gateway. It refuses a host that is not
// loopback (localhost, 127.0.0.0/8, ::1) unless -allow-remote is given, and
// it never sets X-Forwarded-For or any other header that claims a client
// address: the gateway counts every request against this host's address.
// The gateway's default limits (10 starts an hour per client IP, 3 per
// account) therefore answer 429 after a few requests. For a throughput
// figure, run a copy of the Caddyfile whose sms_recovery block raises them,
// lets this one host spend all of sms_global rather than its network's
// share, and turns off the prefix breaker, which stops the codes of a prefix
// once 100 of them in a day go unentered:
//
//	limit start_ip      10000000 1h
//	limit start_account 10000000 1h
//	limit start_phone   10000000 1h
//	limit verify_ip     10000000 1h
//	limit sms_global    10000000 1h
//	sms_share network   100%
//	prefix_breaker off
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "recovery-load:", err)
		}
		os.Exit(2)
	}
}

// run parses args, drives the gateway and prints the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "timing" {
		return runTiming(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	rep, err := load(ctx, cfg)
	if err != nil {
		return err
	}
	rep.print(stdout)
	return nil
}

// config is what the flags ask for.
type config struct {
	base     string // the gateway's path_prefix URL, without a trailing slash
	accounts []string
	n, c     int
	duration time.Duration
	mode     string
	outbox   string
}

const (
	modeStart  = "start"
	modeVerify = "verify"
	modeMixed  = "mixed"
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("recovery-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "http://localhost:8080/recovery", "the gateway's recovery routes (its public URL and path_prefix)")
	accounts := fs.String("accounts", "alice@example.com,nobody1@example.com,nobody2@example.com",
		"comma-separated accounts to start flows for, used in turn; include unknown ones to load the decoy path")
	n := fs.Int("n", 1000, "measured requests in all")
	c := fs.Int("c", 8, "requests in flight at once")
	duration := fs.Duration("duration", time.Minute, "stop after this long, whatever -n says")
	mode := fs.String("mode", modeStart, "start, verify or mixed")
	outbox := fs.String("outbox", "sms-outbox.jsonl", "the gateway's SMS outbox file, where verify and mixed read codes")
	allowRemote := fs.Bool("allow-remote", false, "allow a -url whose host is not loopback")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := config{n: *n, c: *c, duration: *duration, mode: *mode, outbox: *outbox}
	u, err := url.Parse(*rawURL)
	if err != nil {
		return config{}, fmt.Errorf("-url: %w", err)
	}
	if err := checkTarget(u, *allowRemote); err != nil {
		return config{}, fmt.Errorf("-url: %w", err)
	}
	cfg.base = strings.TrimSuffix(u.String(), "/")
	for a := range strings.SplitSeq(*accounts, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.accounts = append(cfg.accounts, a)
		}
	}
	switch {
	case len(cfg.accounts) == 0:
		return config{}, errors.New("-accounts: at least one account is required")
	case cfg.n < 1:
		return config{}, fmt.Errorf("-n %d: must be at least 1", cfg.n)
	case cfg.c < 1:
		return config{}, fmt.Errorf("-c %d: must be at least 1", cfg.c)
	case cfg.duration <= 0:
		return config{}, fmt.Errorf("-duration %s: must be positive", cfg.duration)
	case cfg.mode != modeStart && cfg.mode != modeVerify && cfg.mode != modeMixed:
		return config{}, fmt.Errorf("-mode %q: want start, verify or mixed", cfg.mode)
	}
	return cfg, nil
}

// checkTarget refuses a URL that is not http(s), and one whose host is not
// loopback unless remote targets are allowed. Host names other than
// localhost are refused rather than resolved, so that what is checked is
// what is dialled.
func checkTarget(u *url.URL, allowRemote bool) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	if allowRemote || strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not loopback; pass -allow-remote to load a gateway elsewhere", host)
}

// load runs the mode cfg asks for and returns its report.
func load(ctx context.Context, cfg config) (*report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // the load goes to the target, never through a proxy
	transport.MaxIdleConnsPerHost = cfg.c
	defer transport.CloseIdleConnections()
	l := &loader{
		cfg: cfg,
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		flows: &flows{path: cfg.outbox, waiting: map[string]bool{}},
	}
	if cfg.mode != modeStart {
		if err := l.flows.skipExisting(); err != nil {
			return nil, err
		}
	}

	rep := &report{mode: cfg.mode, concurrency: cfg.c}
	n := cfg.n
	if cfg.mode == modeVerify {
		setup := newRecorder()
		l.phase(ctx, setup, n, func(ctx context.Context, _ int) (string, int, error) { return l.start(ctx) })
		ready, err := l.flows.settle(ctx, time.Second)
		if err != nil {
			return nil, err
		}
		rep.setup, rep.codes = setup, ready
		n = ready
	}
	measured := newRecorder()
	began := time.Now()
	l.phase(ctx, measured, n, l.op)
	rep.elapsed = time.Since(began)
	rep.measured = measured
	return rep, nil
}

// loader sends the requests of one run.
type loader struct {
	cfg    config
	client *http.Client
	flows  *flows
	starts atomic.Int64 // starts sent, to take the accounts in turn
}

// op is the measured request number i of the run's mode.
func (l *loader) op(ctx context.Context, i int) (string, int, error) {
	switch l.cfg.mode {
	case modeStart:
		return l.start(ctx)
	case modeVerify:
		f, ok := l.flows.take()
		if !ok {
			return "verify", 0, errors.New("no flow with a code left")
		}
		return l.verify(ctx, f)
	default: // mixed
		if i%2 == 1 {
			if f, ok := l.flows.take(); ok {
				return l.verify(ctx, f)
			}
		}
		return l.start(ctx)
	}
}

// phase makes n requests with do from cfg.c workers, recording each, and
// returns when all are done or ctx ends.
func (l *loader) phase(ctx context.Context, rec *recorder, n int, do func(context.Context, int) (string, int, error)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range l.cfg.c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				began := time.Now()
				route, status, err := do(ctx, i)
				rec.record(route, status, err, time.Since(began), ctx.Err() != nil)
			}
		})
	}
	wg.Wait()
}

// start posts /start for the next account in turn and remembers the flow.
func (l *loader) start(ctx context.Context) (string, int, error) {
	account := l.cfg.accounts[int(l.starts.Add(1)-1)%len(l.cfg.accounts)]
	status, body, err := l.post(ctx, "/start", map[string]string{"account": account})
	if err == nil && status == http.StatusAccepted {
		var started struct{ Flow string }
		if json.Unmarshal(body, &started) == nil && started.Flow != "" {
			l.flows.add(started.Flow)
		}
	}
	return "start", status, err
}

// verify posts /verify with the code the flow's SMS carried.
func (l *loader) verify(ctx context.Context, f flowCode) (string, int, error) {
	status, _, err := l.post(ctx, "/verify", map[string]string{"flow": f.flow, "code": f.code})
	return "verify", status, err
}

// post sends one JSON request and returns the status and (the start of) the
// answer. It sets no header but Content-Type and User-Agent.
func (l *loader) post(ctx context.Context, route string, payload any) (int, []byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.base+route, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "recovery-load")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, answer, err
}

// flowCode is a started flow and the code its SMS carried.
type flowCode struct{ flow, code string }

var (
	flowInLink = regexp.MustCompile(`[?&]flow=([A-Za-z0-9_-]+)`)
	codeLine   = regexp.MustCompile(`(?m)^@\S+ #(\d+)$`)
)

// flows follows the outbox file for the codes of the flows this run
// started, and hands each flow with a code out once.
type flows struct {
	path string

	mu       sync.Mutex
	offset   int64
	partial  []byte          // an incomplete last line
	waiting  map[string]bool // started, no code seen yet
	ready    []flowCode
	lastRead time.Time
}

// readEvery bounds how often workers read the outbox.
const readEvery = 5 * time.Millisecond

// skipExisting starts reading at the current end of the outbox, which may
// hold the codes of earlier runs.
func (f *flows) skipExisting() error {
	info, err := os.Stat(f.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil // the gateway creates it with the first message
	case err != nil:
		return fmt.Errorf("-outbox: %w", err)
	}
	f.offset = info.Size()
	return nil
}

func (f *flows) add(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waiting[id] = true
}

// take returns a flow whose code has arrived, reading the outbox first if
// it has not been read for readEvery.
func (f *flows) take() (flowCode, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ready) == 0 && time.Since(f.lastRead) >= readEvery {
		// A read error leaves the flows waiting; settle reports it.
		_ = f.read()
	}
	if len(f.ready) == 0 {
		return flowCode{}, false
	}
	fc := f.ready[len(f.ready)-1]
	f.ready = f.ready[:len(f.ready)-1]
	return fc, true
}

// settle waits until every started flow has its code, or no code has come
// for quiet, or ctx ends, and returns how many flows have a code.
func (f *flows) settle(ctx context.Context, quiet time.Duration) (int, error) {
	last, lastChange := -1, time.Now()
	for {
		f.mu.Lock()
		err := f.read()
		ready, waiting := len(f.ready), len(f.waiting)
		f.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if ready != last {
			last, lastChange = ready, time.Now()
		}
		if waiting == 0 || time.Since(lastChange) >= quiet {
			return ready, nil
		}
		select {
		case <-ctx.Done():
			return ready, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// read parses the lines added to the outbox since the last read. f.mu must
// be held.
func (f *flows) read() error {
	f.lastRead = time.Now()
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading outbox: %w", err)
	}
	defer file.Close()
	added, err := io.ReadAll(io.NewSectionReader(file, f.offset, math.MaxInt64-f.offset))
	if err != nil {
		return fmt.Errorf("reading outbox: %w", err)
	}
	f.offset += int64(len(added))
	data := append(f.partial, added...)
	end := bytes.LastIndexByte(data, '\n') + 1
	f.partial = slices.Clone(data[end:])
	for line := range bytes.Lines(data[:end]) {
		var m struct{ Body string }
		if json.Unmarshal(line, &m) != nil {
			continue // not a message line; the file is the gateway's, not ours
		}
		id, code := flowInLink.FindStringSubmatch(m.Body), codeLine.FindStringSubmatch(m.Body)
		if id != nil && code != nil && f.waiting[id[1]] {
			delete(f.waiting, id[1])
			f.ready = append(f.ready, flowCode{flow: id[1], code: code[1]})
		}
	}
	return nil
}

// recorder collects the outcomes of one phase.
type recorder struct {
	mu     sync.Mutex
	routes map[string]*routeStats
	cutOff int // requests the duration cap interrupted
}

// routeStats are the outcomes of one route. Status 0 counts requests that
// got no answer (a refused connection, say).
type routeStats struct {
	status    map[int]int
	latencies []time.Duration
}

func newRecorder() *recorder { return &recorder{routes: map[string]*routeStats{}} }

func (r *recorder) record(route string, status int, err error, latency time.Duration, cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && cut {
		r.cutOff++
		return
	}
	if err != nil {
		status = 0
	}
	s := r.routes[route]
	if s == nil {
		s = &routeStats{status: map[int]int{}}
		r.routes[route] = s
	}
	s.status[status]++
	s.latencies = append(s.latencies, latency)
}

// total is the number of requests recorded, cut-off ones excluded.
func (r *recorder) total() int {
	n := 0
	for _, s := range r.routes {
		n += len(s.latencies)
	}
	return n
}

// report is the outcome of a run.
type report struct {
	mode        string
	concurrency int
	setup       *recorder // the unmeasured starts of -mode verify
	codes       int       // flows of the setup whose code was read
	measured    *recorder
	elapsed     time.Duration
}

func (rep *report) print(w io.Writer) {
	if rep.setup != nil {
		fmt.Fprintf(w, "setup: %d starts (%s), %d codes read from the outbox\n",
			rep.setup.total(), statusList(rep.setup.statuses()), rep.codes)
		if rep.codes == 0 {
			fmt.Fprintln(w, "  no codes: is -outbox the gateway's outbox file, and are the accounts known?")
		}
	}
	total, rate := rep.measured.total(), 0.0
	if total > 0 {
		rate = float64(total) / rep.elapsed.Seconds()
	}
	fmt.Fprintf(w, "mode %s: %d requests in %s with %d in flight: %.1f requests/s\n",
		rep.mode, total, rep.elapsed.Round(time.Millisecond), rep.concurrency, rate)
	if rep.measured.cutOff > 0 {
		fmt.Fprintf(w, "  %d more cut off by -duration, not counted\n", rep.measured.cutOff)
	}
	for _, route := range sortedKeys(rep.measured.routes) {
		s := rep.measured.routes[route]
		lat := slices.Sorted(slices.Values(s.latencies))
		us := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
		fmt.Fprintf(w, "%-7s %s\n", route, statusList(s.status))
		fmt.Fprintf(w, "        latency p50 %s  p90 %s  p99 %s  max %s\n",
			us(percentile(lat, 50)), us(percentile(lat, 90)), us(percentile(lat, 99)), us(lat[len(lat)-1]))
	}
}

// statuses counts the answers of every route by status.
func (r *recorder) statuses() map[int]int {
	counts := map[int]int{}
	for _, s := range r.routes {
		for status, n := range s.status {
			counts[status] += n
		}
	}
	return counts
}

// statusList is "202: 30, 429: 70"; status 0 is "error".
func statusList(counts map[int]int) string {
	var parts []string
	for _, status := range sortedKeys(counts) {
		name := fmt.Sprint(status)
		if status == 0 {
			name = "error"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, counts[status]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// percentile is the nearest-rank p-th percentile of sorted, which must not
// be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
