// Package instances runs the gateway as two real Caddy processes that share
// one Redis, the way a platform team deploys it behind a load balancer. It
// checks that a flow started on one instance verifies and resets on the
// other, that limits count the requests made to both, and that an instance
// that loses Redis answers its recovery routes with 503 while its other
// routes keep working, and recovers without a restart.
//
// TestMain builds ./cmd/caddy once; every test starts its own `caddy run`
// processes with their own admin and HTTP ports (2101/9181 and 2102/9182),
// so the tests do not run in parallel, and package integration, whose
// caddytest harness owns other fixed ports, can run beside this one. The
// tests need a Redis server at $REDIS_URL (default
// redis://127.0.0.1:6379/0): without one they skip, unless CI=true, where
// they fail.
//
// The package holds only tests. They must never leave a Caddy process
// behind, never touch Redis keys outside the random prefix of their own
// test, and never write outside their temporary directories.
package instances
