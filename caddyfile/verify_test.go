package caddyfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

func TestUnmarshalVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  verify.Handler
	}{
		{
			name: "hmac",
			input: `sms_recovery_verify {
				key_id   gw1
				hmac_key AAECAwQF==
				max_skew 30s
			}`,
			want: verify.Handler{KeyID: "gw1", HMACKey: "AAECAwQF==", MaxSkew: caddy.Duration(30 * time.Second)},
		},
		{
			name: "ed25519",
			input: `sms_recovery_verify {
				key_id gw1
				ed25519_public_key "/etc/caddy/gateway key.pem"
			}`,
			want: verify.Handler{KeyID: "gw1", Ed25519PublicKey: "/etc/caddy/gateway key.pem"},
		},
		{
			name: "a rotation: the old key and two more",
			input: `sms_recovery_verify {
				key_id   gw1
				hmac_key AAECAwQF==
				key gw2 hmac_key BBECAwQF==
				key gw3 ed25519_public_key /etc/caddy/gw3.pub.pem
			}`,
			want: verify.Handler{KeyID: "gw1", HMACKey: "AAECAwQF==", Keys: []verify.Key{
				{KeyID: "gw2", HMACKey: "BBECAwQF=="},
				{KeyID: "gw3", Ed25519PublicKey: "/etc/caddy/gw3.pub.pem"},
			}},
		},
		{
			name:  "day-long skew in Caddy's duration syntax",
			input: "sms_recovery_verify {\n max_skew 1d\n}",
			want:  verify.Handler{MaxSkew: caddy.Duration(24 * time.Hour)},
		},
		{
			// Missing and conflicting keys are the business of Validate,
			// which reports them when the configuration loads.
			name:  "empty block",
			input: "sms_recovery_verify",
			want:  verify.Handler{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseVerify(t, tt.input)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// parseVerify parses input, an sms_recovery_verify directive, failing the
// test on an error.
func parseVerify(t *testing.T, input string) verify.Handler {
	t.Helper()
	var h verify.Handler
	if err := h.UnmarshalCaddyfile(cf.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile: %v", err)
	}
	return h
}

func TestUnmarshalVerifyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"argument on the directive", "sms_recovery_verify gw1", "wrong argument count"},
		{"key_id without value", "sms_recovery_verify {\n key_id\n}", "wrong argument count"},
		{"key_id with two values", "sms_recovery_verify {\n key_id gw1 gw2\n}", "wrong argument count"},
		{"hmac_key without value", "sms_recovery_verify {\n hmac_key\n}", "wrong argument count"},
		{"public key with two values", "sms_recovery_verify {\n ed25519_public_key a.pem b.pem\n}", "wrong argument count"},
		{"duplicate key_id", "sms_recovery_verify {\n key_id gw1\n key_id gw2\n}", "duplicate subdirective 'key_id'"},
		{"duplicate hmac_key", "sms_recovery_verify {\n hmac_key a\n hmac_key b\n}", "duplicate subdirective 'hmac_key'"},
		{"bad max_skew", "sms_recovery_verify {\n max_skew soon\n}", "max_skew: 'soon' is not a duration"},
		{"max_skew without value", "sms_recovery_verify {\n max_skew\n}", "wrong argument count"},
		{"unknown subdirective", "sms_recovery_verify {\n keyid gw1\n}", "unrecognized subdirective 'keyid'"},
		{"key with too few values", "sms_recovery_verify {\n key gw2 hmac_key\n}", "key: want <key_id> hmac_key|ed25519_public_key <value>, not 2 values"},
		{"key of an unknown kind", "sms_recovery_verify {\n key gw2 rsa_key k.pem\n}", "key: 'rsa_key' must be hmac_key or ed25519_public_key"},
		{"nonce_store without a store", "sms_recovery_verify {\n nonce_store\n}", "wrong argument count"},
		{"nonce_store of an unknown kind", "sms_recovery_verify {\n nonce_store etcd\n}", "nonce_store: unknown nonce store 'etcd'"},
		{"duplicate nonce_store", "sms_recovery_verify {\n nonce_store memory\n nonce_store redis redis://127.0.0.1:6379\n}", "duplicate subdirective 'nonce_store'"},
		{"nonce_store memory with an argument", "sms_recovery_verify {\n nonce_store memory 1000\n}", "nonce_store memory: takes no argument"},
		{"nonce_store memory with a block", "sms_recovery_verify {\n nonce_store memory {\n size 10\n }\n}", "nonce_store memory: unrecognized subdirective 'size'"},
		{"nonce_store redis without url", "sms_recovery_verify {\n nonce_store redis\n}", "nonce_store redis: a url is required"},
		{"nonce_store redis with two urls", "sms_recovery_verify {\n nonce_store redis redis://a:6379 redis://u:hunter2@b:6379\n}", "nonce_store redis: url: one value, and nothing after it"},
		{"nonce_store redis prefix twice", "sms_recovery_verify {\n nonce_store redis redis://a:6379 {\n prefix a:\n prefix b:\n }\n}", "nonce_store redis: duplicate subdirective 'prefix'"},
		{"nonce_store redis prefix without value", "sms_recovery_verify {\n nonce_store redis redis://a:6379 {\n prefix\n }\n}", "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got verify.Handler
			err := got.UnmarshalCaddyfile(cf.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UnmarshalCaddyfile = %v, want error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestUnmarshalVerifyNonceStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, input string
		want        map[string]any // the nonce_store JSON; nil for none
	}{
		{"default", "sms_recovery_verify {\n key_id gw1\n}", nil},
		{"memory", "sms_recovery_verify {\n nonce_store memory\n}", map[string]any{"store": "memory"}},
		{"redis", "sms_recovery_verify {\n nonce_store redis redis://127.0.0.1:6379/0\n}",
			map[string]any{"store": "redis", "url": "redis://127.0.0.1:6379/0"}},
		{"redis with a prefix and a placeholder", "sms_recovery_verify {\n nonce_store redis {env.REDIS_URL} {\n prefix mail:\n }\n}",
			map[string]any{"store": "redis", "url": "{env.REDIS_URL}", "prefix": "mail:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseVerify(t, tt.input)
			if tt.want == nil {
				if got.NonceStoreRaw != nil {
					t.Errorf("nonce_store = %s, want none", got.NonceStoreRaw)
				}
				return
			}
			var store map[string]any
			if err := json.Unmarshal(got.NonceStoreRaw, &store); err != nil || !reflect.DeepEqual(store, tt.want) {
				t.Errorf("nonce_store = %s (%v), want %v", got.NonceStoreRaw, err, tt.want)
			}
		})
	}
}

// TestVerifyDirectiveAdapts checks that the directive is registered and
// ordered: a site block can use it without a global order option, with a
// matcher, and it runs before respond.
func TestVerifyDirectiveAdapts(t *testing.T) {
	t.Parallel()
	const input = `:8080 {
	respond "reset done"
	sms_recovery_verify /api/* {
		key_id gw1
		hmac_key AAECAwQF==
		max_skew 30s
	}
}
`
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Match  []map[string]any  `json:"match"`
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	routes := cfg.Apps.HTTP.Servers["srv0"].Routes
	if len(routes) != 2 || len(routes[0].Handle) != 1 || len(routes[1].Handle) != 1 {
		t.Fatalf("want two routes of one handler each: %s", out)
	}
	var first map[string]any
	if err := json.Unmarshal(routes[0].Handle[0], &first); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"handler":  "sms_recovery_verify",
		"key_id":   "gw1",
		"hmac_key": "AAECAwQF==",
		"max_skew": float64(30 * time.Second),
	}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("first handler = %v, want %v", first, want)
	}
	if m := routes[0].Match; len(m) != 1 || !reflect.DeepEqual(m[0]["path"], []any{"/api/*"}) {
		t.Errorf("first route matcher = %v, want path /api/*", m)
	}
	if !strings.Contains(string(routes[1].Handle[0]), `"handler":"static_response"`) {
		t.Errorf("second handler = %s, want respond", routes[1].Handle[0])
	}
}
