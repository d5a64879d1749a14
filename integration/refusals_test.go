package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestRefusalsToHandleErrors runs the site of docs/operations.md, whose
// handle_errors routes answer with the refusal's placeholders: with
// handle_errors on, a 429 and a 410 get the site's own bodies, the 429 with
// the gateway's Retry-After; with it off, the same site answers the JSON of
// SPEC §4 as before, its handle_errors routes unused.
func TestRefusalsToHandleErrors(t *testing.T) {
	const errorRoutes = `handle_errors {
		@refused vars {http.sms_recovery.error} rate_limited account_locked ip_blocked
		handle @refused {
			respond "Please wait {http.sms_recovery.retry_after} s: {http.sms_recovery.error} ({http.sms_recovery.scope})." {http.error.status_code}
		}
		respond "{http.error.status_code} {http.error.message}" {http.error.status_code}
	}`
	up := startUpstream(t, "127.0.0.1:0")
	for _, handleErrors := range []bool{true, false} {
		t.Run(fmt.Sprintf("handle_errors %v", handleErrors), func(t *testing.T) {
			extra := "limit start_account 1 1h"
			if handleErrors {
				extra += "\n\t\thandle_errors"
			}
			c := start(t, &site{Upstream: up.addr, Extra: extra, Site: errorRoutes})

			c.startFlow(alice)
			limited := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice))
			expired := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":"123456"}`, strings.Repeat("A", 22)))
			if limited.Status != http.StatusTooManyRequests || expired.Status != http.StatusGone {
				t.Fatalf("statuses %d and %d, want 429 and 410: %s %s", limited.Status, expired.Status, limited.Raw, expired.Raw)
			}
			retry := limited.Header.Get("Retry-After")
			if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 3600 {
				t.Errorf("429 Retry-After %q, want 1..3600", retry)
			}

			if !handleErrors {
				for _, a := range []struct {
					answer
					code string
				}{{limited, "rate_limited"}, {expired, "expired"}} {
					if a.str("error") != a.code || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
						t.Errorf("%d: %s (Content-Type %q), want the JSON error %s", a.Status, a.Raw, a.Header.Get("Content-Type"), a.code)
					}
				}
				if limited.num("retry_after") != mustFloat(t, retry) {
					t.Errorf("retry_after %v, Retry-After %s", limited.num("retry_after"), retry)
				}
				return
			}
			if want := "Please wait " + retry + " s: rate_limited (start_account)."; limited.Raw != want {
				t.Errorf("429 body %q, want %q", limited.Raw, want)
			}
			if want := "410 This code has expired or was used up. Start again to get a new one."; expired.Raw != want || expired.Header.Get("Retry-After") != "" {
				t.Errorf("410 body %q, Retry-After %q; want %q and none", expired.Raw, expired.Header.Get("Retry-After"), want)
			}
			// A success is the gateway's own, whatever the option.
			res, err := c.http.Post(gateway+"/recovery/start", "application/json", strings.NewReader(`{"account":"bob@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var started struct{ Flow string }
			if res.StatusCode != http.StatusAccepted || json.Unmarshal(body, &started) != nil || started.Flow == "" {
				t.Errorf("start for bob: %d %s", res.StatusCode, body)
			}
		})
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
