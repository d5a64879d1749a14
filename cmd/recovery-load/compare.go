package main

// The compare subcommand measures the gateway against plain Caddy on this
// machine. It builds one Caddy binary from ./cmd/recovery-load/caddy (the
// gateway and caddy-ratelimit), runs a baseline site (respond, or
// caddy-ratelimit's 429) and the gateway site in two processes that are up
// at the same time on free loopback ports, with the same logging (Caddy's default
// runtime log, no access log), and drives them in turn: A, B, A, B. Each row
// prints the ratio of the medians and the range of the per-pair ratios, so
// that a noisy neighbour shows as a wide range rather than a wrong figure.
//
//	go run ./cmd/recovery-load compare                 # every row, defaults
//	go run ./cmd/recovery-load compare -rows start,verify -runs 5
//	go run ./cmd/recovery-load compare -flood-ips 100000 -flood-accounts 50000
//
// Throughput rows are gateway requests per second over baseline requests per
// second (higher is better, 1.0 is as fast as the baseline); the p99 row is
// the gateway's p99 latency over the baseline's (lower is better); the flood
// rows report the gateway process's peak resident set (VmHWM) after a flood
// of distinct clients or accounts, with the gateway's storage on its
// defaults.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// compareConfig is what the compare flags ask for.
type compareConfig struct {
	runs          int
	n, c          int
	rows          []string
	redis         string
	floodIPs      int
	floodAccounts int
	caddy         string
	keep          bool
}

// The rows, in the order they print.
var compareRows = []string{"pass", "429", "start", "start-redis", "verify", "p99", "flood-ips", "flood-accounts"}

func parseCompareFlags(args []string, stderr io.Writer) (compareConfig, error) {
	fs := flag.NewFlagSet("recovery-load compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c compareConfig
	rows := fs.String("rows", strings.Join(compareRows, ","), "comma-separated rows to measure: "+strings.Join(compareRows, ", "))
	fs.IntVar(&c.runs, "runs", 3, "interleaved runs per side and row")
	fs.IntVar(&c.n, "n", 4000, "requests per run")
	fs.IntVar(&c.c, "c", 16, "concurrent connections (the p99 row uses 50)")
	fs.StringVar(&c.redis, "redis", "redis://127.0.0.1:6379/15", "Redis for the start-redis row")
	fs.IntVar(&c.floodIPs, "flood-ips", 1_000_000, "distinct client IPs in the flood-ips row")
	fs.IntVar(&c.floodAccounts, "flood-accounts", 200_000, "distinct accounts in the flood-accounts row")
	fs.StringVar(&c.caddy, "caddy", "", "Caddy binary to use instead of building ./cmd/recovery-load/caddy (it needs caddy-ratelimit for the 429 row)")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory (configs and logs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for r := range strings.SplitSeq(*rows, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(compareRows, r) {
			return c, fmt.Errorf("-rows: unknown row %q (have %s)", r, strings.Join(compareRows, ", "))
		}
		c.rows = append(c.rows, r)
	}
	if c.runs < 1 || c.n < 1 || c.c < 1 || c.floodIPs < 1 || c.floodAccounts < 1 {
		return c, errors.New("-runs, -n, -c, -flood-ips and -flood-accounts must be at least 1")
	}
	return c, nil
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseCompareFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "recovery-compare-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(stderr, "working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if cfg.caddy == "" {
		cfg.caddy = filepath.Join(dir, "caddy")
		fmt.Fprintln(stderr, "building ./cmd/recovery-load/caddy ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.caddy, "./cmd/recovery-load/caddy")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building ./cmd/recovery-load/caddy (run compare from the repository root): %w", err)
		}
	}
	h := &harness{cfg: cfg, dir: dir, stderr: stderr}
	if err := h.writeDirectory(); err != nil {
		return err
	}
	var table []rowResult
	for _, row := range cfg.rows {
		fmt.Fprintf(stderr, "row %s ...\n", row)
		res, err := h.row(ctx, row)
		if err != nil {
			res = rowResult{name: rowTitles[row], note: "not measured: " + err.Error()}
		}
		table = append(table, res)
	}
	fmt.Fprintf(stdout, "| path | gateway vs baseline | min–max | detail |\n|---|---|---|---|\n")
	for _, r := range table {
		fmt.Fprintf(stdout, "| %s | %s | %s | %s |\n", r.name, r.value, r.spread, r.note)
	}
	return nil
}

var rowTitles = map[string]string{
	"pass":           "pass-through (a route the handler does not own)",
	"429":            "429 from an exhausted `start_ip`",
	"start":          "`POST /start`, memory storage, outbox",
	"start-redis":    "`POST /start`, Redis",
	"verify":         "`POST /verify`, wrong codes",
	"p99":            "p99 of `/start` at 50 connections",
	"flood-ips":      "peak RSS, distinct client IPs on `/start`, defaults",
	"flood-accounts": "peak RSS, distinct accounts on `/start`, defaults",
}

type rowResult struct {
	name, value, spread, note string
}

// harness holds what every row shares.
type harness struct {
	cfg      compareConfig
	dir      string
	stderr   io.Writer
	accounts []string // in the phone directory
	seq      atomic.Int64
}

// directoryAccounts is how many accounts the phone directory holds for the
// throughput rows; the flood-accounts row writes its own.
const directoryAccounts = 20_000

func (h *harness) writeDirectory() error {
	phones := make(map[string]string, directoryAccounts)
	for i := range directoryAccounts {
		a := fmt.Sprintf("user%d@load.example", i)
		h.accounts = append(h.accounts, a)
		phones[a] = fmt.Sprintf("+316%08d", 10000000+i)
	}
	return writeJSON(filepath.Join(h.dir, "phones.json"), phones)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// proc is one Caddy process.
type proc struct {
	cmd    *exec.Cmd
	exited chan error // receives Wait's result once
	base   string     // http://127.0.0.1:<port>
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// cpu is the process's user and system CPU time so far.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// peakRSS is the process's high-water mark of resident memory, in MiB.
func (p *proc) peakRSS() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// start runs Caddy with a site block (what goes inside the braces of the
// site) and waits until its port answers.
func (h *harness) start(ctx context.Context, name, site string) (*proc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
}
%s {
%s
}
`, base, site)
	n := h.seq.Add(1)
	path := filepath.Join(h.dir, fmt.Sprintf("%s-%d.Caddyfile", name, n))
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(h.dir, fmt.Sprintf("%s-%d.log", name, n)))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.CommandContext(ctx, h.cfg.caddy, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &proc{cmd: cmd, exited: exited, base: base}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("caddy %s exited: %v (see %s)", name, err, logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("caddy %s did not listen within 60s (see %s)", name, logf.Name())
		}
	}
}

// gatewaySite is a site block with the gateway. extra goes inside its
// sms_recovery block; raise lifts the limits out of the way.
func (h *harness) gatewaySite(tag, extra string, raise bool, tail string) (string, error) {
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	limits := ""
	if raise {
		limits = `
		limit start_ip 1000000000 1h
		limit start_account 1000000000 1h
		limit start_phone 1000000000 1h
		limit verify_ip 1000000000 1h
		limit sms_global 1000000000 1h
		prefix_breaker off
		sms_share network 100%
		sms_queue 100000`
	}
	return fmt.Sprintf(`	sms_recovery {
		directory file %s
		sms outbox %s%s
		%s
		forward {
			key_id load
			hmac_key %s
		}
	}
	%s`, filepath.Join(h.dir, "phones.json"), filepath.Join(h.dir, tag+"-outbox.jsonl"), limits, extra,
		base64.StdEncoding.EncodeToString(key), tail), nil
}

// sample is one measured run.
type sample struct {
	rps      float64
	p99      time.Duration
	cpuPerOp time.Duration
	statuses map[int]int
}

// request makes the i-th request of a run against base.
type request func(base string, i int) (*http.Request, error)

// drive sends n requests from c workers and measures them. Every answer must
// have status want, unless want is negative.
func drive(ctx context.Context, p *proc, n, c int, mk request, want int) (sample, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = c
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, n)
		statuses = map[int]int{}
		firstErr error
		wg       sync.WaitGroup
	)
	cpu0, err := p.cpu()
	if err != nil {
		return sample{}, err
	}
	began := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				req, err := mk(p.base, i)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				t0 := time.Now()
				res, err := client.Do(req.WithContext(ctx))
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					status = res.StatusCode
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				statuses[status]++
				if err != nil {
					firstErr = cmpErr(firstErr, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	cpu1, err := p.cpu()
	if err != nil {
		return sample{}, err
	}
	if firstErr != nil {
		return sample{}, firstErr
	}
	if want >= 0 && statuses[want] != n {
		return sample{}, fmt.Errorf("answers %v, want %d × %d", statuses, n, want)
	}
	slices.Sort(lat)
	return sample{
		rps:      float64(n) / elapsed.Seconds(),
		p99:      percentile(lat, 99),
		cpuPerOp: (cpu1 - cpu0) / time.Duration(n),
		statuses: statuses,
	}, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func post(path string, body func(i int) any, ip func(i int) string) request {
	return func(base string, i int) (*http.Request, error) {
		b, err := json.Marshal(body(i))
		if err != nil {
			return nil, err
		}
		r, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		if ip != nil {
			r.Header.Set("X-Forwarded-For", ip(i))
		}
		return r, nil
	}
}

// clientIP is the i-th of 16 million distinct IPv4 addresses in 10/8.
func clientIP(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

// pair measures gateway and baseline in turn, runs times each, and returns
// the ratio of the medians of metric and the range of per-pair ratios.
func (h *harness) pair(ctx context.Context, gw, base *proc, c int, mkGW, mkBase request, wantGW, wantBase int,
	metric func(gw, base sample) float64, warm func(run int) error) (float64, float64, float64, []sample, error) {
	var ratios []float64
	var gws, bases []sample
	for run := range h.cfg.runs {
		if warm != nil {
			if err := warm(run); err != nil {
				return 0, 0, 0, nil, err
			}
		}
		g, err := drive(ctx, gw, h.cfg.n, c, mkGW, wantGW)
		if err != nil {
			return 0, 0, 0, nil, fmt.Errorf("gateway: %w", err)
		}
		b, err := drive(ctx, base, h.cfg.n, c, mkBase, wantBase)
		if err != nil {
			return 0, 0, 0, nil, fmt.Errorf("baseline: %w", err)
		}
		gws, bases = append(gws, g), append(bases, b)
		ratios = append(ratios, metric(g, b))
	}
	med := metric(medianSample(gws), medianSample(bases))
	return med, slices.Min(ratios), slices.Max(ratios), append(gws, bases...), nil
}

// medianSample takes the median of each measure on its own.
func medianSample(s []sample) sample {
	rps := make([]float64, len(s))
	p99 := make([]float64, len(s))
	cpu := make([]float64, len(s))
	for i, x := range s {
		rps[i], p99[i], cpu[i] = x.rps, float64(x.p99), float64(x.cpuPerOp)
	}
	return sample{rps: median(rps), p99: time.Duration(median(p99)), cpuPerOp: time.Duration(median(cpu))}
}

func throughput(g, b sample) float64 { return g.rps / b.rps }
func tail99(g, b sample) float64     { return float64(g.p99) / float64(b.p99) }

func (h *harness) row(ctx context.Context, row string) (rowResult, error) {
	res := rowResult{name: rowTitles[row]}
	accountBody := func(i int) any { return map[string]string{"account": h.accounts[i%len(h.accounts)]} }
	switch row {
	case "flood-ips", "flood-accounts":
		return h.flood(ctx, row)
	}

	var gwSite, baseSite string
	var err error
	mkGW, mkBase := request(nil), request(nil)
	wantGW, wantBase := 0, 0
	c := h.cfg.c
	metric := throughput
	var warm func(gw, base *proc) func(int) error
	switch row {
	case "pass":
		gwSite, err = h.gatewaySite("pass", "", false, `respond "ok" 200`)
		baseSite = `	respond "ok" 200`
		get := func(base string, _ int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, base+"/mail/", nil)
		}
		mkGW, mkBase, wantGW, wantBase = get, get, 200, 200
	case "429":
		gwSite, err = h.gatewaySite("429", "limit start_ip 1 1h", false, `respond 404`)
		// caddy-ratelimit, one event an hour per client: the limiter a
		// site would otherwise put in front of the route.
		baseSite = `	route /recovery/start {
		rate_limit {
			zone start_ip {
				key {http.request.remote.host}
				events 1
				window 1h
			}
		}
		respond "{\"flow\":\"x\"}" 202
	}`
		mk := post("/recovery/start", accountBody, nil)
		mkGW, mkBase, wantGW, wantBase = mk, mk, 429, 429
		warm = func(gw, base *proc) func(int) error {
			return func(run int) error {
				if run > 0 {
					return nil
				}
				// Spend the one start this client has on each side.
				if _, err := drive(ctx, gw, 1, 1, mk, 202); err != nil {
					return err
				}
				_, err := drive(ctx, base, 1, 1, mk, 202)
				return err
			}
		}
	case "start", "p99", "start-redis":
		extra := ""
		if row == "start-redis" {
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return res, err
			}
			prefix := fmt.Sprintf("compare%d:", time.Now().UnixNano())
			// A load run measures speed, on whatever Redis it is given,
			// often a throwaway one that keeps nothing on disk.
			extra = fmt.Sprintf("secret %s\n\t\tstorage redis %s {\n\t\t\tprefix %s\n\t\t\tallow_volatile\n\t\t}", base64.StdEncoding.EncodeToString(secret), h.cfg.redis, prefix)
			if err := redisReachable(h.cfg.redis); err != nil {
				return res, err
			}
		}
		gwSite, err = h.gatewaySite(row, extra, true, `respond 404`)
		baseSite = `	respond /recovery/start "{\"flow\":\"x\"}" 202`
		mk := post("/recovery/start", accountBody, nil)
		mkGW, mkBase, wantGW, wantBase = mk, mk, 202, 202
		if row == "p99" {
			c, metric = 50, tail99
		}
	case "verify":
		gwSite, err = h.gatewaySite("verify", "max_attempts 20\n\t\tlockout 1000000000 1h 1m\n\t\tip_block 1000000000 1h 1m", true, `respond 404`)
		baseSite = `	respond /recovery/verify "{\"error\":\"invalid_code\"}" 400`
		var flows []string
		mkGW = func(base string, i int) (*http.Request, error) {
			// 19 wrong codes per flow: each answers 400, none kills it.
			return post("/recovery/verify", func(int) any {
				return map[string]string{"flow": flows[i/19], "code": "000000"}
			}, nil)(base, i)
		}
		mkBase = post("/recovery/verify", func(int) any { return map[string]string{"flow": "x", "code": "000000"} }, nil)
		wantGW, wantBase = 400, 400
		warm = func(gw, _ *proc) func(int) error {
			return func(int) error {
				var err error
				flows, err = startFlows(ctx, gw, (h.cfg.n+18)/19, h.accounts)
				return err
			}
		}
	}
	if err != nil {
		return res, err
	}
	gw, err := h.start(ctx, "gateway-"+row, gwSite)
	if err != nil {
		return res, err
	}
	defer gw.stop()
	base, err := h.start(ctx, "baseline-"+row, baseSite)
	if err != nil {
		return res, err
	}
	defer base.stop()
	var w func(int) error
	if warm != nil {
		w = warm(gw, base)
	}
	var redis0 time.Duration
	if row == "start-redis" {
		if redis0, err = redisCPU(h.cfg.redis); err != nil {
			return res, err
		}
	}
	med, lo, hi, samples, err := h.pair(ctx, gw, base, c, mkGW, mkBase, wantGW, wantBase, metric, w)
	if err != nil {
		return res, err
	}
	redisNote := ""
	if row == "start-redis" {
		redis1, err := redisCPU(h.cfg.redis)
		if err != nil {
			return res, err
		}
		// Redis is idle during the baseline's runs: its CPU is the gateway's.
		redisNote = fmt.Sprintf(", and Redis %s", ((redis1 - redis0) / time.Duration(h.cfg.runs*h.cfg.n)).Round(time.Microsecond))
	}
	gs, bs := medianSample(samples[:h.cfg.runs]), medianSample(samples[h.cfg.runs:])
	res.value, res.spread = fmt.Sprintf("%.2f ×", med), fmt.Sprintf("%.2f–%.2f", lo, hi)
	if row == "p99" {
		res.note = fmt.Sprintf("p99 %s vs %s, c=%d", gs.p99.Round(10*time.Microsecond), bs.p99.Round(10*time.Microsecond), c)
	} else {
		res.note = fmt.Sprintf("%.0f vs %.0f req/s; Caddy CPU %s vs %s per request%s", gs.rps, bs.rps,
			gs.cpuPerOp.Round(time.Microsecond), bs.cpuPerOp.Round(time.Microsecond), redisNote)
	}
	return res, nil
}

// startFlows starts n flows, unmeasured, and returns their IDs.
func startFlows(ctx context.Context, p *proc, n int, accounts []string) ([]string, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	flows := make([]string, 0, n)
	for i := range n {
		b, _ := json.Marshal(map[string]string{"account": accounts[i%len(accounts)]})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/recovery/start", bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var started struct{ Flow string }
		err = json.NewDecoder(res.Body).Decode(&started)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusAccepted {
			return nil, fmt.Errorf("starting a flow: status %d %v", res.StatusCode, err)
		}
		flows = append(flows, started.Flow)
	}
	return flows, nil
}

// flood runs a fresh gateway with its storage on the defaults and sends one
// start from each of many distinct client IPs: for distinct accounts unknown
// to the directory (flood-ips), or for distinct accounts it holds, which get
// a code each (flood-accounts). The account, phone and SMS budgets are
// lifted, and the prefix breaker is off, so that every start does its whole
// work rather than meet the global budget after 1,000 codes, or the block
// of its prefix after 100. It reports the peak resident set.
func (h *harness) flood(ctx context.Context, row string) (rowResult, error) {
	res := rowResult{name: rowTitles[row]}
	n := h.cfg.floodIPs
	dirFile := filepath.Join(h.dir, "phones.json")
	if row == "flood-accounts" {
		n = h.cfg.floodAccounts
		phones := make(map[string]string, n)
		for i := range n {
			phones[fmt.Sprintf("flood%d@load.example", i)] = fmt.Sprintf("+316%08d", 20000000+i)
		}
		dirFile = filepath.Join(h.dir, "flood-phones.json")
		if err := writeJSON(dirFile, phones); err != nil {
			return res, err
		}
	}
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		return res, err
	}
	site := fmt.Sprintf(`	sms_recovery {
		directory file %s
		sms outbox %s
		limit start_account 1000000000 1h
		limit start_phone 1000000000 1h
		limit sms_global 1000000000 1h
		prefix_breaker off
		sms_share network 100%%
		forward {
			key_id load
			hmac_key %s
		}
	}
	respond 404`, dirFile, filepath.Join(h.dir, row+"-outbox.jsonl"), base64.StdEncoding.EncodeToString(key))
	gw, err := h.start(ctx, "gateway-"+row, site)
	if err != nil {
		return res, err
	}
	defer gw.stop()
	idle, err := gw.peakRSS()
	if err != nil {
		return res, err
	}
	account := func(i int) any { return map[string]string{"account": fmt.Sprintf("nobody%d@load.example", i)} }
	if row == "flood-accounts" {
		account = func(i int) any { return map[string]string{"account": fmt.Sprintf("flood%d@load.example", i)} }
	}
	// Any mix of 202 and refusals is what a flood meets; they are counted.
	s, err := drive(ctx, gw, n, h.cfg.c, post("/recovery/start", account, clientIP), -1)
	if err != nil {
		return res, err
	}
	peak, err := gw.peakRSS()
	if err != nil {
		return res, err
	}
	res.value = fmt.Sprintf("%.0f MiB", peak)
	res.spread = "–"
	res.note = fmt.Sprintf("%d starts (%s) at %.0f req/s; %.0f MiB before the flood", n, statusList(s.statuses), s.rps, idle)
	return res, nil
}

// redisClient returns a client of its own for the Redis at a redis:// URL,
// quick to give up.
func redisClient(raw string) (*redis.Client, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis URL %q: %w", raw, err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.MaxRetries = 2*time.Second, 2*time.Second, 2*time.Second, -1
	return redis.NewClient(opts), nil
}

// redisCPU returns the CPU time the Redis server at a redis:// URL has
// used (INFO cpu: used_cpu_sys and used_cpu_user).
func redisCPU(raw string) (time.Duration, error) {
	c, err := redisClient(raw)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis at %s: INFO cpu: %w", c.Options().Addr, err)
	}
	var total float64
	found := 0
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("redis at %s: %s: %w", c.Options().Addr, line, err)
			}
			total += f
			found++
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("redis at %s: INFO cpu has no used_cpu_sys and used_cpu_user", c.Options().Addr)
	}
	return time.Duration(total * float64(time.Second)), nil
}

// redisReachable checks that something answers PING at a redis:// URL.
func redisReachable(raw string) error {
	c, err := redisClient(raw)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		return fmt.Errorf("no Redis answers PING at %s: %w", c.Options().Addr, err)
	}
	return nil
}
