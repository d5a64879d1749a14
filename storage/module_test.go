package storage

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
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
		{"small memory", "memory", `{"max_entries": 99}`, "storage memory: max_entries 99 is below 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadStorage(t, c.module, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestMemoryModule(t *testing.T) {
	o, err := loadStorage(t, "memory", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if m := o.(*MemoryModule); m.MaxEntries != DefaultMaxEntries {
		t.Fatalf("max_entries = %d, want the default %d", m.MaxEntries, DefaultMaxEntries)
	}
	st, err := o.Open()
	if err != nil || st.Backend == nil {
		t.Fatalf("Open = %+v, %v", st, err)
	}
	defer st.Close()
	if _, ok := st.Backend.(limiter.PlanStore); !ok {
		t.Fatalf("the memory store runs no plans: the guard would need counters, and Open gave none")
	}
	if _, ok := o.(Shared); ok {
		t.Error("the memory store says other processes share it")
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
		{"memory", &MemoryModule{}, "memory", `{}`},
		{"memory bounded", &MemoryModule{}, "memory {\nmax_entries 5000\n}", `{"max_entries":5000}`},
		{"memory argument", &MemoryModule{}, "memory 5000", "error: storage memory: takes no argument"},
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
