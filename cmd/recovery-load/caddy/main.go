// Command caddy is the Caddy that recovery-load compare runs: the standard
// modules, caddy-sms-recovery, and caddy-ratelimit, whose 429 is the
// baseline of the gateway's. Both sides of every row run this one binary.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-ratelimit"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
)

func main() {
	caddycmd.Main()
}
