// Package memory is the store http.handlers.sms_recovery.storage.memory,
// the gateway's default: flows, tokens, security state and rate counters
// in this process, one type (Store) that is both the Caddy guest module and
// the store it opens.
//
// Each kind of record sits in a table of its own bound: a full flow table
// refuses new flows (the clients holding the most first) and never drops a
// pending one, a full token table drops the least recently used, a full
// security table lets the cheapest run of wrong codes go but never a lock
// or a run behind one, and the budgets (start_account, start_phone,
// sms_global) are never dropped while their window is open. Every method
// is atomic: one mutex guards every table.
//
// While a store is open it keeps the Go runtime's soft memory limit over
// what its tables hold when full (memlimit.go), unless its
// soft_memory_limit is off or GOMEMLIMIT is set.
//
// This package must never hold a code or a token in the clear (it only
// ever sees their keyed hashes), never drop a lock or a run that set one
// to make room, never start a goroutine and never log.
package memory
