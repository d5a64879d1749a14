// Package examplekey holds the forward key the examples publish, which
// anyone can read, so that the gateway and the verifier can both refuse it
// outside a setup that only this machine reaches.
package examplekey

import (
	"net/netip"
	"strings"
)

// HMACKey is the forward key, in base64, of examples/Caddyfile and
// examples/caddy.json.
const HMACKey = "Wtp8gV0TZ3bboJVJkx3TmVeShce4raO4XAYgGIFI/LV+gEDfarC2DON66wunjsZgTQWcP6GFIWGWnls/lNkGfA=="

// LoopbackHost reports whether host names this machine only: localhost, a
// name under it, or a loopback address.
func LoopbackHost(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
