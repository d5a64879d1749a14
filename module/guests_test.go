package module

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	filedirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/file"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/redistest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/outbox"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

// guest is the JSON of a guest module as the gateway's config holds it:
// its settings and its name under key ("source", "provider", "backend").
func guest(mod caddy.Module, key string) json.RawMessage {
	return caddyconfig.JSONModuleObject(mod, key, caddy.GetModuleName(mod), nil)
}

func fileDirectory(path string) json.RawMessage {
	return guest(&filedirectory.File{Path: path}, "source")
}

func outboxSender(path string) json.RawMessage {
	return guest(&outbox.Outbox{Path: path}, "provider")
}

func messageBirdSender(mb *messagebird.MessageBird) json.RawMessage {
	return guest(mb, "provider")
}

func memoryStorage(maxEntries int) json.RawMessage {
	return guest(&memory.Store{MaxEntries: maxEntries}, "backend")
}

// memoryKey is the pool key of the memory store of maxEntries, with the
// defaults its Provision fills.
func memoryKey(maxEntries int) string {
	m := &memory.Store{MaxEntries: maxEntries}
	if err := m.Provision(caddy.Context{}); err != nil {
		panic(err)
	}
	key, err := poolKey(m)
	if err != nil {
		panic(err)
	}
	return key
}

// ownStores numbers the stores of ownMemoryStorage.
var ownStores atomic.Int64

// ownMemoryStorage is a memory store no other test handler shares: the pool
// shares stores by their settings, and with them limits and locks, so two
// tests with the same max_entries would spend each other's limits.
func ownMemoryStorage() json.RawMessage {
	return memoryStorage(200_000 + int(ownStores.Add(1)))
}

// redisTestStorage returns a Redis storage module on the test server under
// a prefix of its own, or skips tb when Redis does not answer (fails it
// when CI=true). The keys under the prefix are removed when tb ends.
func redisTestStorage(tb testing.TB) json.RawMessage {
	tb.Helper()
	// Through the project's own client, so that every URL form the
	// storage accepts works here too. The test server keeps nothing on
	// disk, and is meant to.
	client, err := redisstore.NewClient(redistest.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	redistest.Require(tb, client.Ping(ctx).Err())
	prefix := redistest.Prefix(tb, client)
	return guest(&redisstore.Store{URL: redistest.URL(), Prefix: prefix, AllowVolatile: true}, "backend")
}
