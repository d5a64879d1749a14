package redisstore

import (
	"context"
	"encoding/json"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// loadStorage loads the module as a config would, Provision and Validate.
func loadStorage(t *testing.T, raw string) (*Store, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(storage.Namespace+".redis", json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return mod.(*Store), nil
}

func TestRedisModuleLoadErrors(t *testing.T) {
	t.Setenv("STORAGE_TEST_EMPTY", "")
	cases := []struct{ name, raw, want string }{
		{"without url", `{}`, "storage redis: a URL is required"},
		{"url from an empty variable", `{"url": "{env.STORAGE_TEST_EMPTY}"}`, "storage redis: url: placeholder {env.STORAGE_TEST_EMPTY} is empty"},
		{"password from an unset variable", `{"url": "redis://:{env.STORAGE_TEST_UNSET}@127.0.0.1:6379"}`,
			"storage redis: url: placeholder {env.STORAGE_TEST_UNSET} is empty"},
		{"bad scheme", `{"url": "http://127.0.0.1:6379"}`, "storage redis: "},
		{"prefix with braces", `{"url": "redis://127.0.0.1:6379", "prefix": "a{b}"}`, "prefix must not contain braces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadStorage(t, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestRedisModule(t *testing.T) {
	requireRedis(t)
	// The test server keeps nothing on disk, and is meant to.
	s, err := loadStorage(t, `{"url": "`+redistest.URL()+`", "allow_volatile": true}`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != DefaultPrefix {
		t.Fatalf("prefix = %q, want the default", s.Prefix)
	}
	var shared storage.Shared = s
	if !shared.SharedAcrossProcesses() {
		t.Error("the Redis store does not say other processes share it")
	}
	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Backend != recovery.Store(s) {
		t.Errorf("Open gave %T, not the module itself", st.Backend)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(); err == nil {
		t.Error("a second Open of one Store succeeded; it would leak the first client")
	}
}

func TestRedisUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{"redis", "redis redis://127.0.0.1:6379/0 {\nprefix app:\npool_size 4\n}", `{"url":"redis://127.0.0.1:6379/0","prefix":"app:","pool_size":4}`},
		{"redis unknown", "redis redis://x {\ndb 2\n}", "error: storage redis: unrecognized subdirective 'db'"},
		{"redis opt-ins", "redis redis://x {\nallow_volatile\nallow_eviction\n}", `{"url":"redis://x","allow_volatile":true,"allow_eviction":true}`},
		{"redis hold", "redis redis://x {\nstate_loss_hold 24h\n}", `{"url":"redis://x","state_loss_hold":86400000000000}`},
		{"redis opt-in with argument", "redis redis://x {\nallow_volatile yes\n}", "error: storage redis: allow_volatile takes no argument, not 'yes'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := new(Store)
			err := s.UnmarshalCaddyfile(cf.NewTestDispenser(c.input))
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(s); string(got) != c.want {
				t.Fatalf("JSON = %s, want %s", got, c.want)
			}
		})
	}
}
