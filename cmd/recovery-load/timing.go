package main

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
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The gateway and Caddy's standard modules run in this process.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
)

// The timing subcommand measures whether POST /start tells the kinds of
// account apart by its answer time: one with a mobile number, one unknown,
// and one whose number must not be texted (a landline). It runs a gateway
// of its own in this process, on a free loopback port, with the limits
// raised, and sends -n requests per kind, interleaved in a shuffled order
// on one keep-alive connection, each naming an account not seen before.
// For each run it prints the median of each kind, the ratios of medians to
// the unknown account's, and the two-sided Mann-Whitney p-value of each
// kind against the unknown one. It asserts nothing: it is a measurement,
// for a quiet machine.
//
//	go run ./cmd/recovery-load timing -n 2000 -runs 3

// kinds of account, in the order the report lists them.
var kinds = []string{"mobile", "unknown", "landline"}

func runTiming(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recovery-load timing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "measured requests per kind of account and run")
	runs := fs.Int("runs", 3, "runs, each with accounts of its own")
	warm := fs.Int("warmup", 200, "unmeasured requests per kind before each run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 20 || *runs < 1 || *warm < 0 {
		return errors.New("-n must be at least 20, -runs at least 1, -warmup not negative")
	}
	dir, err := os.MkdirTemp("", "recovery-timing-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, stop, err := startTimingGateway(dir, *runs, *n+*warm)
	if err != nil {
		return err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	fmt.Fprintf(stdout, "POST /start, %d requests per kind and run, interleaved on one connection\n", *n)
	fmt.Fprintf(stdout, "%-4s %12s %12s %12s   %-22s %-22s\n", "run", "mobile µs", "unknown µs", "landline µs", "mobile/unknown (p)", "landline/unknown (p)")
	for r := range *runs {
		samples := map[string][]float64{}
		order := make([]int, len(kinds))
		for i := range *n + *warm {
			for j := range order {
				order[j] = j
			}
			shuffle(order)
			for _, k := range order {
				kind := kinds[k]
				d, err := timeStart(ctx, client, base, timingAccount(kind, r, i))
				if err != nil {
					return err
				}
				if i >= *warm {
					samples[kind] = append(samples[kind], d)
				}
			}
		}
		med := map[string]float64{}
		for _, k := range kinds {
			med[k] = median(samples[k])
		}
		_, pm := mannWhitney(samples["mobile"], samples["unknown"])
		_, pl := mannWhitney(samples["landline"], samples["unknown"])
		fmt.Fprintf(stdout, "%-4d %12.1f %12.1f %12.1f   %-22s %-22s\n", r+1, med["mobile"], med["unknown"], med["landline"],
			fmt.Sprintf("%.3f (%.0e)", med["mobile"]/med["unknown"], pm), fmt.Sprintf("%.3f (%.0e)", med["landline"]/med["unknown"], pl))
	}
	return nil
}

func timingAccount(kind string, run, i int) string {
	return fmt.Sprintf("%s-%d-%d@timing.example", kind, run, i)
}

// startTimingGateway writes a phone directory with an account of each kind
// per request and runs a gateway over it; it returns the URL of its
// recovery routes and how to stop it.
func startTimingGateway(dir string, runs, perRun int) (string, func(), error) {
	phones := map[string]string{}
	for r := range runs {
		for i := range perRun {
			// Dutch numbers: 06 mobiles, and Amsterdam's 020 landlines, which
			// get no code.
			phones[timingAccount("mobile", r, i)] = fmt.Sprintf("+316%08d", 10000000+r*perRun+i)
			phones[timingAccount("landline", r, i)] = fmt.Sprintf("+3120%07d", 1000000+r*perRun+i)
		}
	}
	data, err := json.Marshal(phones)
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "phones.json"), data, 0o600); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		return "", nil, err
	}
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	log {
		output file %[1]s
	}
}
%[2]s {
	sms_recovery {
		public_url %[2]s
		directory file %[3]s
		sms outbox %[4]s
		sms_queue 100000
		allowed_countries NL
		limit start_ip 1000000000 1h
		limit start_account 1000000000 1h
		limit start_phone 1000000000 1h
		limit verify_ip 1000000000 1h
		limit sms_global 1000000000 1h
		prefix_breaker off
		sms_share network 100%%
		storage memory {
			max_entries 1000000
		}
		forward {
			key_id timing
			hmac_key %[5]s
		}
	}
	respond 404
}
`, filepath.Join(dir, "caddy.log"), site, filepath.Join(dir, "phones.json"), filepath.Join(dir, "outbox.jsonl"),
		base64.StdEncoding.EncodeToString(key))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return "", nil, fmt.Errorf("adapting the timing gateway's Caddyfile: %w", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return "", nil, fmt.Errorf("starting the timing gateway: %w", err)
	}
	return site + "/recovery", func() { _ = caddy.Stop() }, nil
}

// timeStart posts one start and returns how long the answer took, in µs.
func timeStart(ctx context.Context, client *http.Client, base, account string) (float64, error) {
	body, _ := json.Marshal(map[string]string{"account": account})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/start", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	took := time.Since(began)
	if res.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("start for %s: status %d", account, res.StatusCode)
	}
	return float64(took.Nanoseconds()) / 1e3, nil
}

func shuffle(s []int) {
	mrand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mannWhitney returns the U statistic of a against b and the two-sided
// p-value of the normal approximation, with the correction for ties.
func mannWhitney(a, b []float64) (u, p float64) {
	type obs struct {
		v     float64
		fromA bool
	}
	all := make([]obs, 0, len(a)+len(b))
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(x, y obs) int {
		switch {
		case x.v < y.v:
			return -1
		case x.v > y.v:
			return 1
		}
		return 0
	})
	n1, n2, n := float64(len(a)), float64(len(b)), float64(len(all))
	var rankA, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // ranks i+1 … j, averaged
		for k := i; k < j; k++ {
			if all[k].fromA {
				rankA += rank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	u = rankA - n1*(n1+1)/2
	mean := n1 * n2 / 2
	sigma := math.Sqrt(n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1))))
	if sigma == 0 {
		return u, 1
	}
	z := (u - mean) / sigma
	return u, math.Erfc(math.Abs(z) / math.Sqrt2)
}
