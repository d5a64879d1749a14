package ldapwriter

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
)

// TestDocsExampleValidates: the password ldap example of docs/upstream.md
// passes what caddy validate does (adapt, then provision and validate
// every module), with its two environment variables set.
func TestDocsExampleValidates(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "upstream.md"))
	if err != nil {
		t.Fatal(err)
	}
	var examples []string
	for _, m := range regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(md), -1) {
		if strings.Contains(m[1], "password ldap") {
			examples = append(examples, m[1])
		}
	}
	if len(examples) != 1 {
		t.Fatalf("docs/upstream.md has %d caddyfile blocks with password ldap, want 1", len(examples))
	}
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	t.Setenv("SMS_RECOVERY_FORWARD_KEY", base64.StdEncoding.EncodeToString(key))
	t.Setenv("LDAP_WRITER_PASSWORD", "writer-s3cret")

	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(examples[0]), map[string]any{"filename": "docs/upstream.md"})
	if err != nil {
		t.Fatalf("adapting the example: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapting the example warns: %d: %s %s", w.Line, w.Directive, w.Message)
	}
	if !strings.Contains(string(adapted), `"writer":"ldap"`) {
		t.Fatalf("the adapted example has no ldap writer:\n%s", adapted)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Admin = &caddy.AdminConfig{Disabled: true}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("caddy validate refuses the example: %v", err)
	}
}
