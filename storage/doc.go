// Package storage holds the backends that keep recovery state: flows,
// reset tokens (recovery.Store) and account locks and IP blocks
// (limiter.LockStore).
//
// Memory keeps them in this process, bounded by a number of entries with the
// least recently used going first. Redis keeps them on a Redis server shared
// by every instance behind a load balancer, so that a flow started on one
// verifies on another.
//
// Every Store method is atomic with respect to the others, across processes
// for Redis: concurrent callers never both consume a flow, both spend a
// token or both count the same attempt. Expired records behave as missing.
//
// This package must never hold a code or a token in the clear (it only ever
// sees their keyed hashes), never put a record on a server without a time to
// live, never log, and never import Caddy. Its storagetest subpackage is the
// one contract suite every backend passes.
package storage
