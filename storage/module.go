package storage

import (
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Namespace is the Caddy module namespace of stores. The gateway loads one
// from its "storage" field, whose "backend" names the module: {"backend":
// "memory", "max_entries": 100000} loads
// http.handlers.sms_recovery.storage.memory.
//
// A storage module's Provision and Validate expand placeholders, fill
// defaults and check the settings; they must open nothing, since the
// gateway keeps the opened state across config reloads (SPEC §7: state
// survives a reload). The module implements Opener, and the gateway calls
// Open only when no state for the same settings is open yet, and keeps
// what Open returns, which may be the module itself (the memory store is):
// it keys its pool by the module's ID and a SHA-256 of its JSON encoding,
// so settings must be exported JSON fields, and a password in a URL never
// appears in the clear in the key.
const Namespace = "http.handlers.sms_recovery.storage"

// Opened is the state a storage module opened.
type Opened struct {
	// Backend holds flows, tokens, rate counters and locks.
	Backend recovery.Store
	// Close, if set, frees what Open took once no handler uses the state.
	Close func() error
}

// Opener is a provisioned storage module.
type Opener interface {
	// Open makes the state for the module's settings.
	Open() (*Opened, error)
}

// Shared is implemented by a storage module whose state other processes
// see too, such as Redis: every one of them must then hash codes and tokens
// with the same secrets, so the gateway requires them to be configured.
type Shared interface {
	SharedAcrossProcesses() bool
}
