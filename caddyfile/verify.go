package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sms_recovery_verify", verifyParseCaddyfile)
	// After forward_auth, like sms_recovery just before it, keeps it ahead
	// of respond, reverse_proxy, php_fastcgi and file_server, with no
	// global order option.
	httpcaddyfile.RegisterDirectiveOrder("sms_recovery_verify", httpcaddyfile.After, "forward_auth")
}

// verifyParseCaddyfile sets up the verifier from Caddyfile tokens: the
// block is the handler's own (verify.Handler.UnmarshalCaddyfile, where the
// syntax is).
func verifyParseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m verify.Handler
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return &m, nil
}
