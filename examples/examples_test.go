// Package examples holds configs a newcomer can run as they are, the test
// that keeps caddy.json equal to what caddy adapt makes of Caddyfile, the
// one that keeps the production example adapting with its timeouts, and the
// one that keeps the Roundcube example's handlers in order and its site
// block in the README.
package examples

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
)

// update rewrites caddy.json from Caddyfile instead of comparing them:
//
//	go test ./examples -update
//
// Run it after changing the Caddyfile or the JSON shape of the module.
var update = flag.Bool("update", false, "rewrite caddy.json from Caddyfile")

// TestJSONIsAdaptedCaddyfile: examples/caddy.json is what
//
//	caddy adapt --config examples/Caddyfile --pretty
//
// prints, byte for byte, and the adapter has nothing to warn about.
func TestJSONIsAdaptedCaddyfile(t *testing.T) {
	adapted := adaptCaddyfile(t, "Caddyfile")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, adapted, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n') // as caddy adapt prints it
	if *update {
		if err := os.WriteFile("caddy.json", pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile("caddy.json")
	if err != nil {
		t.Fatalf("%v (make it with: go test ./examples -update)", err)
	}
	if !bytes.Equal(have, pretty.Bytes()) {
		t.Errorf("examples/caddy.json is not the adapted Caddyfile; refresh it with: go test ./examples -update\nwant:\n%s", pretty.Bytes())
	}
}

// adaptCaddyfile adapts the Caddyfile at path, below examples/, as caddy
// adapt does, and returns the JSON; the adapter must have nothing to warn
// about.
func adaptCaddyfile(t *testing.T, path string) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := "examples/" + filepath.ToSlash(path)
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": name})
	if err != nil {
		t.Fatalf("adapting %s: %v", name, err)
	}
	for _, w := range warnings {
		t.Errorf("adapting %s warns: %s:%d: %s %s", name, w.File, w.Line, w.Directive, w.Message)
	}
	return adapted
}

// TestProductionCaddyfile adapts examples/production/Caddyfile as caddy
// adapt does, so that it cannot rot: it must adapt without a warning, keep
// the server timeouts that cut off slow and silent clients on every server
// it makes, keep every secret out of the file ({env.NAME} placeholders
// only), and name only variables that the systemd unit's environment file
// lists.
func TestProductionCaddyfile(t *testing.T) {
	adapted := adaptCaddyfile(t, filepath.Join("production", "Caddyfile"))
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen            []string       `json:"listen"`
					ReadTimeout       caddy.Duration `json:"read_timeout"`
					ReadHeaderTimeout caddy.Duration `json:"read_header_timeout"`
					ReadIdleTimeout   caddy.Duration `json:"read_idle_timeout"`
					ReadMinRate       int64          `json:"read_min_rate"`
					WriteTimeout      caddy.Duration `json:"write_timeout"`
					WriteIdleTimeout  caddy.Duration `json:"write_idle_timeout"`
					IdleTimeout       caddy.Duration `json:"idle_timeout"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	servers := cfg.Apps.HTTP.Servers
	if len(servers) == 0 {
		t.Fatal("the production Caddyfile makes no server")
	}
	for name, s := range servers {
		for _, tm := range []struct {
			what     string
			got      caddy.Duration
			min, max time.Duration
		}{
			// Each bound: at least what a real client on a slow line
			// needs, at most what leaves a slow client holding a
			// connection for long.
			{"read_header", s.ReadHeaderTimeout, 2 * time.Second, 30 * time.Second},
			{"read_body", s.ReadTimeout, 30 * time.Second, 15 * time.Minute},
			{"read_body_idle", s.ReadIdleTimeout, 5 * time.Second, time.Minute},
			{"write", s.WriteTimeout, 30 * time.Second, 15 * time.Minute},
			{"write_idle", s.WriteIdleTimeout, 5 * time.Second, time.Minute},
			{"idle", s.IdleTimeout, 30 * time.Second, 5 * time.Minute},
		} {
			if d := time.Duration(tm.got); d < tm.min || d > tm.max {
				t.Errorf("server %s %v: timeouts %s is %v, want between %v and %v", name, s.Listen, tm.what, d, tm.min, tm.max)
			}
		}
		if s.ReadMinRate <= 0 {
			t.Errorf("server %s %v: read_body_idle sets no least rate, so a trickling body is never cut off", name, s.Listen)
		}
	}

	// The handler is there, with every secret from the environment.
	text := string(adapted)
	if !strings.Contains(text, `"handler":"sms_recovery"`) {
		t.Fatal("the production Caddyfile has no sms_recovery handler")
	}
	for _, field := range []string{"secrets", "hmac_key", "access_key", "url", "dsn"} {
		m := regexp.MustCompile(`"`+field+`":\[?"([^"]*)"`).FindAllStringSubmatch(text, -1)
		if len(m) == 0 {
			t.Errorf("no %q in the adapted production config", field)
		}
		for _, v := range m {
			if !strings.HasPrefix(v[1], "{env.") {
				t.Errorf("%s is %q in the production Caddyfile: give secrets as {env.NAME}", field, v[1])
			}
		}
	}
	env, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", "caddy-sms-recovery.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\{env\.([A-Z0-9_]+)\}`).FindAllStringSubmatch(text, -1) {
		if !regexp.MustCompile(`(?m)^` + m[1] + `=`).Match(env) {
			t.Errorf("the production Caddyfile names {env.%s}, which deploy/systemd/caddy-sms-recovery.env does not list", m[1])
		}
	}
}

// TestRoundcubeCaddyfile adapts examples/roundcube/Caddyfile as caddy adapt
// does: one server in which the gateway comes first, the verifier that
// writes the passwd-file next, on the path the gateway passes a reset on
// with, and Roundcube last. The README shows the file's site block: every
// line it shows must be in the file, in the same order.
func TestRoundcubeCaddyfile(t *testing.T) {
	t.Setenv("SMS_RECOVERY_FORWARD_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==")
	adapted := string(adaptCaddyfile(t, filepath.Join("roundcube", "Caddyfile")))
	gateway := strings.Index(adapted, `"handler":"sms_recovery"`)
	verifier := strings.Index(adapted, `"handler":"sms_recovery_verify"`)
	roundcube := strings.Index(adapted, `"handler":"reverse_proxy"`) // what php_fastcgi becomes
	if gateway < 0 || verifier < gateway || roundcube < verifier {
		t.Fatalf("want the gateway, then the verifier, then Roundcube's php_fastcgi; got offsets %d, %d, %d in\n%s", gateway, verifier, roundcube, adapted)
	}
	if !strings.Contains(adapted, `"path":["/recovery/reset"]`) {
		t.Error("the verifier is not on /recovery/reset, where the gateway passes a verified reset on")
	}

	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile("(?s)## In front of a real mail server\n.*?```caddyfile\n(.*?)```").FindSubmatch(readme)
	if section == nil {
		t.Fatal(`README.md has no caddyfile block under "In front of a real mail server"`)
	}
	file, err := os.ReadFile(filepath.Join("roundcube", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(file), "\n")
	for _, want := range strings.Split(strings.TrimSuffix(string(section[1]), "\n"), "\n") {
		for len(lines) > 0 && lines[0] != want {
			lines = lines[1:]
		}
		if len(lines) == 0 {
			t.Fatalf("README.md shows %q, which examples/roundcube/Caddyfile does not have there", want)
		}
		lines = lines[1:]
	}
}
