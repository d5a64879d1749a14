// Package instances runs the gateway as two real Caddy processes that share
// one Redis, the way a platform team deploys it behind a load balancer. It
// checks that a flow started on one instance verifies and resets on the
// other, that limits count the requests made to both, and that an instance
// that loses Redis answers its recovery routes with 503 while its other
// routes keep working, and recovers without a restart. It also runs the
// upstream's verifier, sms_recovery_verify, as two processes sharing a
// nonce store in Redis: a signed reset passes once across both and across
// their restarts. Behind the gateway, a verifier that sets the password
// itself keeps the reset token valid when it refuses the password or its
// database is down, and spends it once the password is written; that test
// also needs the PostgreSQL of docs/development.md.
//
// TestMain builds ./cmd/caddy once; every test starts its own `caddy run`
// processes. Each gets its HTTP and admin listeners from the test, on free
// ports, already listening (Caddy's bind fd/N), so no port is ever free
// between being chosen and being served, and this package runs beside any
// other, package integration's fixed ports included. The tests need a
// Redis server at $REDIS_URL (default
// redis://127.0.0.1:6379/0): without one they skip, unless CI=true, where
// they fail.
//
// The package holds only tests. They must never leave a Caddy process
// behind, never touch Redis keys outside the random prefix of their own
// test, and never write outside their temporary directories.
package instances
