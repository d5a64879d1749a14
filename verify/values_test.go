package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestBadValuesAreToldAtLoad loads verifier configurations with values no
// real config wants, in JSON and in a Caddyfile, and wants each refused
// with a message that names the setting and says what to write instead.
func TestBadValuesAreToldAtLoad(t *testing.T) {
	t.Parallel()
	const key = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg=="
	cases := []struct {
		name, json, caddyfile string
		want, want2           string // parts of the error
	}{
		{name: "unset hmac_key", caddyfile: "key_id gw1\n\thmac_key {env.SMSREC_TEST_UNSET_HMAC_KEY}",
			want: "hmac_key: placeholder {env.SMSREC_TEST_UNSET_HMAC_KEY} is empty", want2: "is the environment variable SMSREC_TEST_UNSET_HMAC_KEY set?"},
		{name: "unset ed25519_public_key", json: `{"key_id": "gw1", "ed25519_public_key": "{env.SMSREC_TEST_UNSET_PUB}"}`,
			want: "ed25519_public_key: placeholder {env.SMSREC_TEST_UNSET_PUB} is empty", want2: "SMSREC_TEST_UNSET_PUB set?"},
		{name: "unset key of a rotation", caddyfile: "key_id gw1\n\thmac_key " + key + "\n\tkey gw2 hmac_key {env.SMSREC_TEST_UNSET_GW2}",
			want: `key "gw2": hmac_key: placeholder {env.SMSREC_TEST_UNSET_GW2} is empty`, want2: "SMSREC_TEST_UNSET_GW2 set?"},
		{name: "bare max_skew", json: `{"key_id": "gw1", "hmac_key": "` + key + `", "max_skew": 60}`,
			want: "max_skew: 60ns is below the least of 1s", want2: `in JSON a duration is a string such as "60s" (a bare number counts nanoseconds)`},
		{name: "short max_skew", caddyfile: "key_id gw1\n\thmac_key " + key + "\n\tmax_skew 500ms",
			want: "max_skew: 500ms is below the least of 1s", want2: `a duration is a string such as "60s"`},
		{name: "spelled-out max_skew", json: `{"key_id": "gw1", "hmac_key": "` + key + `", "max_skew": "a minute"}`,
			want: `max_skew: time: invalid duration "a minute"`, want2: `a duration is a string such as "60s"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := new(Handler)
			var err error
			if c.json != "" {
				err = caddy.StrictUnmarshalJSON([]byte(c.json), h)
			} else {
				err = h.UnmarshalCaddyfile(cf.NewTestDispenser("sms_recovery_verify {\n\t" + c.caddyfile + "\n}"))
			}
			if err == nil {
				ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
				defer cancel()
				err = h.Provision(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.want2) {
				t.Fatalf("loading = %v\nwant an error containing %q and %q", err, c.want, c.want2)
			}
		})
	}
}
