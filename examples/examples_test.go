// Package examples holds configs a newcomer can run as they are, and the
// test that keeps caddy.json equal to what caddy adapt makes of Caddyfile.
package examples

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

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
	src, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "examples/Caddyfile"})
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapting the Caddyfile warns: %s:%d: %s %s", w.File, w.Line, w.Directive, w.Message)
	}
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
