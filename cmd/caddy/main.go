// Command caddy is Caddy with its standard modules and caddy-sms-recovery.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-recovery/caddy-sms-recovery"
)

func main() {
	caddycmd.Main()
}
