// Package caddyfile adapts the sms_recovery and sms_recovery_verify
// Caddyfile directives into the JSON configuration of package module.
package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sms_recovery", parseRecovery)
	// Before forward_auth puts it ahead of respond, reverse_proxy,
	// php_fastcgi and file_server, with no global order option.
	httpcaddyfile.RegisterDirectiveOrder("sms_recovery", httpcaddyfile.Before, "forward_auth")
}

// parseRecovery sets up the gateway from Caddyfile tokens: the block is the
// handler's own (module.Handler.UnmarshalCaddyfile, where the syntax is).
// Without public_url, the site address is the public URL when the site block
// names exactly one host (see sitePublicURL); otherwise public_url is left
// out, and the config does not load until it is set.
func parseRecovery(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m module.Handler
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if m.PublicURL == "" && !h.IsNamedRoute() {
		m.PublicURL = sitePublicURL(siteAddresses(h), portOption(h, "http_port", "80"), portOption(h, "https_port", "443"))
	}
	return &m, nil
}
