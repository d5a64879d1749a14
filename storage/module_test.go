package storage

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
)

func loadStorage(t *testing.T, name, raw string) (Opener, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(Namespace+"."+name, json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return mod.(Opener), nil
}

func TestStorageModuleLoadErrors(t *testing.T) {
	t.Setenv("STORAGE_TEST_EMPTY", "")
	cases := []struct{ name, module, raw, want string }{
		{"redis without url", "redis", `{}`, "storage redis: a URL is required"},
		{"redis url from an empty variable", "redis", `{"url": "{env.STORAGE_TEST_EMPTY}"}`, "storage redis: url: placeholder {env.STORAGE_TEST_EMPTY} is empty"},
		{"redis password from an unset variable", "redis", `{"url": "redis://:{env.STORAGE_TEST_UNSET}@127.0.0.1:6379"}`,
			"storage redis: url: placeholder {env.STORAGE_TEST_UNSET} is empty"},
		{"redis bad scheme", "redis", `{"url": "http://127.0.0.1:6379"}`, "storage redis: "},
		{"redis prefix with braces", "redis", `{"url": "redis://127.0.0.1:6379", "prefix": "a{b}"}`, "prefix must not contain braces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadStorage(t, c.module, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestRedisModule(t *testing.T) {
	requireRedis(t)
	// The test server keeps nothing on disk, and is meant to.
	o, err := loadStorage(t, "redis", `{"url": "`+redistest.URL()+`", "allow_volatile": true}`)
	if err != nil {
		t.Fatal(err)
	}
	m := o.(*RedisModule)
	if m.Prefix != DefaultRedisPrefix {
		t.Fatalf("prefix = %q, want the default", m.Prefix)
	}
	if !m.SharedAcrossProcesses() {
		t.Error("the Redis store does not say other processes share it")
	}
	st, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Backend.(*Redis).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStorageUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mod   cf.Unmarshaler
		input string
		want  string
	}{
		{"redis", &RedisModule{}, "redis redis://127.0.0.1:6379/0 {\nprefix app:\npool_size 4\n}", `{"url":"redis://127.0.0.1:6379/0","prefix":"app:","pool_size":4}`},
		{"redis unknown", &RedisModule{}, "redis redis://x {\ndb 2\n}", "error: storage redis: unrecognized subdirective 'db'"},
		{"redis opt-ins", &RedisModule{}, "redis redis://x {\nallow_volatile\nallow_eviction\n}", `{"url":"redis://x","allow_volatile":true,"allow_eviction":true}`},
		{"redis hold", &RedisModule{}, "redis redis://x {\nstate_loss_hold 24h\n}", `{"url":"redis://x","state_loss_hold":86400000000000}`},
		{"redis opt-in with argument", &RedisModule{}, "redis redis://x {\nallow_volatile yes\n}", "error: storage redis: allow_volatile takes no argument, not 'yes'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.mod.UnmarshalCaddyfile(cf.NewTestDispenser(c.input))
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(c.mod); string(got) != c.want {
				t.Fatalf("JSON = %s, want %s", got, c.want)
			}
		})
	}
}
