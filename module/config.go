package module

import (
	"github.com/caddyserver/caddy/v2"
)

// Limit is a number of events allowed in a window.
type Limit struct {
	// Events is how many events the window allows.
	Events int64 `json:"events"`
	// Window is the length of the fixed window. At least 1s.
	Window caddy.Duration `json:"window"`
}

// Threshold locks or blocks for Duration after Failures wrong codes in
// Window. Window and Duration are at least 1s.
type Threshold struct {
	Failures int64          `json:"failures"`
	Window   caddy.Duration `json:"window"`
	Duration caddy.Duration `json:"duration"`
}

// Forward says how the verified reset is passed on.
type Forward struct {
	// Path replaces the request path the upstream receives. Default: unchanged.
	Path string `json:"path,omitempty"`

	// KeyID names the signing key in Signature-Input.
	KeyID string `json:"key_id,omitempty"`

	// HMACKey is the base64 of at least 64 random bytes, for hmac-sha256.
	HMACKey string `json:"hmac_key,omitempty"`

	// Ed25519Key is the path of a PKCS#8 PEM Ed25519 private key.
	Ed25519Key string `json:"ed25519_key,omitempty"`

	// Fields, when set, is the allow-list of body fields (JSON object keys
	// or form fields) a client's reset passes to the upstream; every other
	// field is dropped. Name only what the upstream reads, usually
	// "password", so that an extra field such as "account" or "user" can
	// never reach it: the signature vouches for the whole body. reset_token
	// cannot be named. The pages' own reset always sends just "password".
	// Default: every field but reset_token passes.
	Fields []string `json:"fields,omitempty"`
}

// DeliveryReports says which delivery reports the gateway takes, at
// <path_prefix>/sms-report/<provider>. Kannel's need nothing here: a sender
// with reports kannel hands Kannel a dlr-url signed with the secrets
// (secret), which only this gateway can make.
type DeliveryReports struct {
	// BirdSecrets are the signing secrets (whsec_…) of the Bird webhook
	// subscription that posts SMS events to
	// <public_url><path_prefix>/sms-report/bird, newest first: during a
	// rotation Bird signs with both. Placeholders are expanded. Without
	// one, every Bird report is refused as forged.
	BirdSecrets []string `json:"bird_secrets,omitempty"`
}
