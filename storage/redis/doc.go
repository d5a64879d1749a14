// Package redisstore is the store http.handlers.sms_recovery.storage.redis
// (Store): flows, reset tokens, locks and rate counters on a Redis server,
// Sentinel or Cluster, shared by every instance behind a load balancer, so
// that a flow started on one verifies on another. An opened Store is a
// recovery.Store, a recovery.Store and a ulule limiter.Store. It refuses
// a server that would forget (safety.go) and notices one that did,
// refusing work until an operator acknowledges the loss (epoch.go): lost
// security state is never taken for a clean slate.
//
// Every change is one command or one Lua script, so it is atomic on the
// server whichever instance sends it, and every key it writes has a time to
// live. Times it compares come from the injected clock and are kept to the
// millisecond; times to live are set relative to that clock.
//
// Errors that mean Redis cannot answer (refused or timed-out connections, a
// server loading, read-only or out of memory) satisfy
// errors.Is(err, recovery.ErrUnavailable), and so do those of a server that
// refuses the settings (a *MisconfiguredError: password, ACL, database,
// TLS), which Open refuses at load and which say so at run time
// (misconfig.go).
//
// RunPlan makes the whole of a request (lock checks, counters, the change to
// a flow or token, strikes, the prefix breaker) one Lua script, so one
// round trip; go-redis
// sends it as EVALSHA and loads it on NOSCRIPT. The scripts are the .lua
// files of lua/, embedded (scripts.go).
//
// Keys, under the prefix P and the hash tag {P recovery}:
//
//	P{Precovery}:flow:<id>            hash: data (JSON), attempts, sends, code_hash, sent_at, expires_at, account
//	P{Precovery}:token:<hex hash>     hash: data (JSON), expires_at, held_until
//	P{Precovery}:lock:<kind>:<key>    hash: the recovery.Record of a key (times in ms); an
//	                                  account's run and a prefix's blocks have no time to
//	                                  live, a client's lives as long as its window and block
//	P{Precovery}:locks:<kind>         sorted set of the kind's locked records, scored
//	                                  by Until (+inf: permanent)
//	P{Precovery}:count:<scope>:<key>  a rate counter, whose ulimiter.Store key is <scope>:<key>;
//	                                  its window is its time to live (count.go); the prefix
//	                                  breaker's are prefix_sent and prefix_entered
//	P{Precovery}:epoch                hash: id, seq, lost, acked; no time to live (epoch.go)
//
// One request touches the client's keys, the account's, the flow's and the
// global SMS budget at once, and the script that does it must find them all
// in one Redis Cluster slot: so every key of a deployment carries the same
// hash tag. The price is that a deployment's keys live on one node of a
// Cluster and are not spread over the others: a Cluster gives it failover,
// not more throughput or memory than one node has. Deployments under
// different prefixes fall in different slots. Tags per account cannot
// work: a client's block and counters, and the budget, span accounts.
//
// It must never hold a code or a token in the clear (it only ever sees
// their keyed hashes), never put a record on the server without a time to
// live (but an account's run of wrong codes, a prefix's blocks and the
// deployment's epoch),
// and never log but its load-time warnings and go-redis's routed lines
// (plumbing.go): what it notices at run time it reports as a
// storage.Alarm, which the gateway logs.
package redisstore
