package caddyfile_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/examplekey"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

// TestOperatorMistakesAreToldAtLoad loads the mistakes operators make, in
// the Caddyfile and in JSON, as `caddy validate` does: each is refused
// before anyone is locked out, by a message that names the directive or
// JSON field and says what to do, and that holds no secret of the config.
// The rows that need Redis (a URL the server refuses) run when it answers.
func TestOperatorMistakesAreToldAtLoad(t *testing.T) {
	const (
		key    = "hmac_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
		secret = "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
		dir    = "directory file $TMP/phones.json\n"
		outbox = "sms outbox $TMP/outbox.jsonl\n"
		half1  = marker + "0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		half2  = marker + "1BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=="
	)
	forward := "forward {\n key_id gw1\n " + key + "\n}\n"
	gateway := func(body string) string {
		return "http://mail.example.com {\n sms_recovery {\n  public_url https://mail.example.com\n" +
			body + " }\n reverse_proxy 127.0.0.1:9\n}\n"
	}
	verifier := func(body string) string {
		return "http://legacy.internal {\n sms_recovery_verify {\n  key_id gw1\n" + body + " }\n respond 204\n}\n"
	}
	redisHost := ""
	if u, err := url.Parse(redistest.URL()); err == nil {
		redisHost = u.Host
	}
	national := `{"alice@example.com":"0612345678","bob@example.com":"06 2345 6789"}`
	good := `{"alice@example.com":"+31612345678"}`

	cases := []struct {
		name      string
		caddyfile string                 // a Caddyfile, or
		json      func(h map[string]any) // a change to the gateway of examples/caddy.json
		phones    string                 // phones.json, good unless set
		redis     bool                   // needs a Redis that answers
		want      []string               // each in the error
		notWant   []string               // none in the error
	}{
		{name: "directory of national numbers", phones: national,
			caddyfile: gateway(dir + outbox + forward),
			want:      []string{"directory file", "phones.json", "national_format", "international form"},
			notWant:   []string{"0612345678", "06 2345 6789", "2345"}},
		{name: "json code_ttl as a bare number",
			json: func(h map[string]any) { h["code_ttl"] = 300 },
			want: []string{"code_ttl", `"5m"`}},
		{name: "json token_ttl in words",
			json: func(h map[string]any) { h["token_ttl"] = "5 minutes" },
			want: []string{"token_ttl", `"5m"`}},
		{name: "caddyfile code_ttl below a minute",
			caddyfile: gateway(dir + outbox + forward + "code_ttl 30s\n"),
			want:      []string{"code_ttl", "1m"}},
		{name: "redis url with a user the server does not know", redis: true,
			caddyfile: gateway(dir + outbox + forward + secret + "storage redis redis://nosuchuser:" + marker + "@$REDIS/0\n"),
			want:      []string{"storage redis", "user name or password"}},
		{name: "redis database the server does not have", redis: true,
			caddyfile: gateway(dir + outbox + forward + secret + "storage redis redis://:" + marker + "x@$REDIS/99\n"),
			want:      []string{"storage redis", "99"}},
		{name: "key pasted on two lines",
			caddyfile: gateway(dir + outbox + "forward {\n key_id gw1\n hmac_key " + half1 + "\n" + half2 + "\n}\n"),
			want:      []string{"not shown"}},
		{name: "verifier key from an unset variable",
			caddyfile: verifier(" hmac_key {env.MISTAKES_TEST_UNSET_KEY}\n"),
			want:      []string{"MISTAKES_TEST_UNSET_KEY"},
			notWant:   []string{"give exactly one"}},
		{name: "the example's key on a public site",
			caddyfile: gateway(dir + outbox + "forward {\n key_id gw1\n hmac_key " + examplekey.HMACKey + "\n}\n"),
			want:      []string{"hmac_key", "example"}},
		{name: "the example's key on a public verifier",
			caddyfile: verifier(" hmac_key " + examplekey.HMACKey + "\n"),
			want:      []string{"hmac_key", "example"}},
		{name: "language without texts",
			caddyfile: gateway(dir + outbox + forward + "language es\n"),
			want:      []string{"language", "es"}},
		{name: "json public_url without a host",
			json: func(h map[string]any) { h["public_url"] = "https:///reset" },
			want: []string{"public_url"}, notWant: []string{"site address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.redis {
				redistest.Require(t, redistest.Client(t).Ping(t.Context()).Err())
			}
			tmp := t.TempDir()
			phones := c.phones
			if phones == "" {
				phones = good
			}
			if err := os.WriteFile(filepath.Join(tmp, "phones.json"), []byte(phones), 0o600); err != nil {
				t.Fatal(err)
			}
			config := exampleWith(t, tmp, c.json)
			if c.caddyfile != "" {
				src := strings.NewReplacer("$TMP", tmp, "$REDIS", redisHost).Replace(c.caddyfile)
				out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
				for _, w := range warnings {
					if strings.Contains(w.String(), marker) {
						t.Errorf("adapter warning shows a secret: %s", w)
					}
				}
				if err != nil {
					checkMessage(t, err, c.want, c.notWant)
					return
				}
				config = out
			}
			logs, err := validate(t, config)
			if err == nil {
				t.Fatal("the configuration loads")
			}
			checkMessage(t, err, c.want, c.notWant)
			for line := range strings.Lines(logs) {
				if strings.Contains(line, marker) {
					t.Errorf("log line shows a secret: %s", line)
				}
			}
			if _, err := os.Stat(filepath.Join(tmp, "outbox.jsonl")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused config left an outbox file behind (%v)", err)
			}
		})
	}
}

// checkMessage asserts that err holds every part of want, none of
// notWant, and no secret.
func checkMessage(t *testing.T, err error, want, notWant []string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, marker) {
		t.Errorf("error shows a secret: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error = %v\nwant one mentioning %q", err, w)
		}
	}
	for _, w := range notWant {
		if strings.Contains(msg, w) {
			t.Errorf("error = %v\nwant one without %q", err, w)
		}
	}
}

// exampleWith returns examples/caddy.json with its phone directory in dir
// and its gateway's handler changed by change (if not nil).
func exampleWith(t *testing.T, dir string, change func(map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile("../examples/caddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var found bool
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "sms_recovery" {
				v["directory"] = map[string]any{"source": "file", "path": filepath.Join(dir, "phones.json")}
				v["sms"] = map[string]any{"provider": "outbox", "path": filepath.Join(dir, "outbox.jsonl")}
				if change != nil {
					change(v)
				}
				found = true
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(cfg)
	if !found {
		t.Fatal("examples/caddy.json has no sms_recovery handler")
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
