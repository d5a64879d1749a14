// Package storage is the namespace of the stores that keep recovery state
// (Namespace, Opener, Backend): flows, reset tokens (recovery.Store), the
// security state of locks, blocks and the wrong codes behind them, and the
// rate counters, which are ulule's: each backend is a ulimiter.Store, whose
// counter step its plans take too (limiter.PlanStore). Its storagetest
// subpackage is the one contract suite every backend passes.
//
// The memory store is a package of its own, storage/memory. Redis keeps
// the state on a Redis server shared by every instance behind a load
// balancer, so that a flow started on one verifies on another. It refuses
// a server that would forget (redissafety.go) and notices one that did,
// refusing work until an operator acknowledges the loss (redisepoch.go):
// lost security state is never taken for a clean slate.
//
// Every Store method is atomic with respect to the others, across processes
// for Redis: concurrent callers never both consume a flow, both spend a
// token or both count the same attempt. Expired records behave as missing.
//
// A store must never hold a code or a token in the clear (it only ever
// sees their keyed hashes), never put a record on a server without a time to
// live (but an account's run of wrong codes, which lasts until a correct
// code or support ends it, and the deployment's epoch), never drop a lock
// or a run that set one to make room, never log but the Redis module's
// load-time warnings and go-redis's routed lines (what it notices at run
// time it reports as an Alarm, which the gateway logs).
//
// RedisModule is the Caddy guest module
// http.handlers.sms_recovery.storage.redis (see Namespace and Opener).
// The files *_module.go and redis_plumbing.go (the rate limiter's counters
// on Redis, go-redis's log lines and the load-time checks) are the only
// code here that imports Caddy.
package storage
