// Package integration runs the gateway inside a real Caddy, configured from
// a Caddyfile, against upstreams that check its signature. Caddy's test
// harness listens on fixed ports, so every such test lives in this one
// package and none of them runs in parallel.
package integration
