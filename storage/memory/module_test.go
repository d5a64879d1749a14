package memory

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

func TestModuleLoadErrors(t *testing.T) {
	t.Parallel()
	if _, err := guesttest.Load(t, &Store{MaxEntries: 99}); err == nil || !strings.Contains(err.Error(), "storage memory: max_entries 99 is below 100") {
		t.Fatalf("load = %v, want max_entries refused", err)
	}
}

func TestModule(t *testing.T) {
	m, err := guesttest.Load(t, new(Store))
	if err != nil {
		t.Fatal(err)
	}
	if m.MaxEntries != DefaultMaxEntries || m.SoftMemoryLimit == nil || !*m.SoftMemoryLimit {
		t.Fatalf("settings = %d, %v; want the defaults %d and a soft memory limit", m.MaxEntries, m.SoftMemoryLimit, DefaultMaxEntries)
	}
	var o storage.Opener = m
	st, err := o.Open()
	if err != nil || st.Backend == nil {
		t.Fatalf("Open = %+v, %v", st, err)
	}
	defer st.Close()
	if st.Backend != recovery.Store(m) {
		t.Fatalf("Open gave a %T, not the store itself", st.Backend)
	}
	if _, ok := o.(storage.Shared); ok {
		t.Error("the memory store says other processes share it")
	}
	if _, err := m.Flow(context.Background(), "none"); !errors.Is(err, recovery.ErrNotFound) {
		t.Fatalf("Flow of an unknown ID = %v, want ErrNotFound", err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "default", Mod: new(Store), Input: "memory", Want: `{}`},
		{Name: "bounded", Mod: new(Store), Input: "memory {\nmax_entries 5000\n}", Want: `{"max_entries":5000}`},
		{Name: "no soft memory limit", Mod: new(Store), Input: "memory {\nsoft_memory_limit off\n}", Want: `{"soft_memory_limit":false}`},
		{Name: "soft memory limit", Mod: new(Store), Input: "memory {\nsoft_memory_limit on\nmax_entries 200\n}", Want: `{"max_entries":200,"soft_memory_limit":true}`},
		{Name: "argument", Mod: new(Store), Input: "memory 5000", Want: "error: storage memory: takes no argument"},
		{Name: "bad switch", Mod: new(Store), Input: "memory {\nsoft_memory_limit maybe\n}", Want: "error: soft_memory_limit: 'maybe' must be on or off"},
		{Name: "twice", Mod: new(Store), Input: "memory {\nmax_entries 200\nmax_entries 300\n}", Want: "error: storage memory: duplicate subdirective 'max_entries'"},
		{Name: "unknown", Mod: new(Store), Input: "memory {\nttl 5m\n}", Want: "error: storage memory: unrecognized subdirective 'ttl'"},
	})
}
