// Package storage is the namespace of the stores that keep recovery state
// (Namespace, Opener, Backend): flows, reset tokens, the security state of
// locks, blocks and the wrong codes behind them, and the rate counters,
// which are ulule's: each backend is a ulimiter.Store, whose counter step
// its plans take too. Each backend is a package of its own, its guest
// module being the store: storage/memory (the default) and storage/redis
// (state shared by every instance behind a load balancer, which refuses a
// server that would forget and notices one that did). Its storagetest
// subpackage is the one contract suite every backend passes.
//
// Every store method is atomic with respect to the others, across processes
// for Redis: concurrent callers never both consume a flow, both spend a
// token or both count the same attempt. Expired records behave as missing.
//
// A store must never hold a code or a token in the clear (it only ever
// sees their keyed hashes), never put a record on a server without a time to
// live (but an account's run of wrong codes, which lasts until a correct
// code or support ends it, and the deployment's epoch), never drop a lock
// or a run that set one to make room, and never log but at load: what it
// notices at run time it reports as an Alarm, which the gateway logs.
package storage
