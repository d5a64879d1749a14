package module

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// valuesJSON is a gateway config that loads, with room for more keys.
const valuesJSON = `{"public_url": "https://mail.example.com",
	"directory": {"source": "file", "path": "phones.json"},
	"forward": {"key_id": "gw1", "hmac_key": "` + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" + `"}%s}`

// valuesCaddyfile is a gateway block that loads, with room for more lines.
const valuesCaddyfile = `sms_recovery {
	public_url https://mail.example.com
	directory file phones.json
	forward {
		key_id gw1
		hmac_key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	}
	%s
}`

// TestBadValuesAreToldAtLoad loads configurations with values no real
// config wants, in JSON and in a Caddyfile, and wants each refused with a
// message that names the setting and says what to write instead.
func TestBadValuesAreToldAtLoad(t *testing.T) {
	t.Parallel()
	const bare = `in JSON a duration is a string such as "5m" (a bare number counts nanoseconds)`
	const spelled = `a duration is a string such as "5m", "90s" or "1h30m"`
	cases := []struct {
		name        string
		json        string // extra JSON keys, or "" when the case is a Caddyfile
		caddyfile   string // extra lines of the block
		want, want2 string // parts of the error
	}{
		{"bare code_ttl", `, "code_ttl": 300`, "", "code_ttl: 300ns is below the least of 1m", bare},
		{"short code_ttl", "", "code_ttl 1s", "code_ttl: 1s is below the least of 1m", bare},
		{"bare token_ttl", `, "token_ttl": 600`, "", "token_ttl: 600ns is below the least of 1m", bare},
		{"short trace_ttl", "", "trace_ttl 30m", "trace_ttl: 30m0s is below the least of 1h", bare},
		{"long trace_ttl", `, "trace_ttl": "401d"`, "", "trace_ttl: 9624h0m0s is more than 400d", ""},
		{"bare resend_interval", `, "resend_interval": 60`, "", "resend_interval: 60ns is below the least of 1s", bare},
		{"short resend_interval", "", "resend_interval 500ms", "resend_interval: 500ms is below the least of 1s", bare},
		{"bare limit window", `, "limits": {"start_ip": {"events": 3, "window": 3600}}`, "",
			"limits: start_ip: window (limit start_ip <events> <window>): 3.6µs is below the least of 1s", bare},
		{"zero limit window", `, "limits": {"verify_ip": {"events": 3, "window": "0s"}}`, "",
			"limits: verify_ip: window (limit verify_ip <events> <window>): 0s is below the least of 1s", bare},
		{"short limit window", "", "limit start_account 3 500ms", "limit start_account: window '500ms' is below the least of 1s", ""},
		{"zero limit window in a Caddyfile", "", "limit start_account 3 0s", "limit start_account: window '0s' is below the least of 1s", ""},
		{"spelled-out limit window in a Caddyfile", "", "limit start_account 3 hour", "limit start_account: window 'hour' is not a duration such as 30m or 1h", ""},
		{"zero lockout window", `, "lockout": {"failures": 5, "window": 0, "duration": "30m"}`, "",
			"lockout: window (lockout <failures> <window> <duration>): 0s is below the least of 1s", bare},
		{"short lockout", "", "lockout 5 1h 500ms", "lockout: duration '500ms' is below the least of 1s", ""},
		{"bare ip_block", `, "ip_block": {"failures": 20, "window": "1h", "duration": 3600}`, "",
			"ip_block: duration (ip_block <failures> <window> <duration>): 3.6µs is below the least of 1s", bare},
		{"short ip_block window", "", "ip_block 20 500ms 1h", "ip_block: window '500ms' is below the least of 1s", ""},
		{"spelled-out code_ttl", `, "code_ttl": "5 minutes"`, "", `code_ttl: time: unknown unit " minutes"`, spelled},
		{"spelled-out limit window", `, "limits": {"start_ip": {"events": 3, "window": "an hour"}}`, "",
			`limits: start_ip: window: time: invalid duration "an hour"`, spelled},
		{"spelled-out lockout duration", `, "lockout": {"failures": 5, "window": "1h", "duration": "half an hour"}`, "",
			`lockout: duration: time: invalid duration "half an hour"`, spelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := new(Handler)
			var err error
			if c.json != "" {
				err = caddy.StrictUnmarshalJSON([]byte(strings.Replace(valuesJSON, "%s", c.json, 1)), h)
			} else {
				err = h.UnmarshalCaddyfile(cf.NewTestDispenser(strings.Replace(valuesCaddyfile, "%s", c.caddyfile, 1)))
			}
			if err == nil {
				h.fillDefaults()
				err = h.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.want2) {
				t.Fatalf("loading = %v\nwant an error containing %q and %q", err, c.want, c.want2)
			}
		})
	}
}

// TestGoodValuesLoad loads the least values of each duration, and the
// spellings a person writes, in JSON and in a Caddyfile.
func TestGoodValuesLoad(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ json, caddyfile string }{
		{json: `, "code_ttl": "1m", "token_ttl": "1m", "resend_interval": "1s",
			"limits": {"start_ip": {"events": 1, "window": "1s"}},
			"lockout": {"failures": 1, "window": "1s", "duration": "1s"},
			"ip_block": {"failures": 1, "window": "1s", "duration": "1s"}`},
		{json: `, "code_ttl": 300000000000, "resend_interval": 0`},
		{caddyfile: "code_ttl 1h\n\ttrace_ttl 90d\n\ttoken_ttl 1d\n\tresend_interval 2m\n\tlimit sms_global 10 1d\n\tlockout 3 1h 2h\n\tip_block 10 1h 24h"},
	} {
		h := new(Handler)
		var err error
		if c.json != "" {
			err = caddy.StrictUnmarshalJSON([]byte(strings.Replace(valuesJSON, "%s", c.json, 1)), h)
		} else {
			err = h.UnmarshalCaddyfile(cf.NewTestDispenser(strings.Replace(valuesCaddyfile, "%s", c.caddyfile, 1)))
		}
		if err == nil {
			h.fillDefaults()
			err = h.Validate()
		}
		if err != nil {
			t.Errorf("loading %s%s: %v", c.json, c.caddyfile, err)
		}
	}
}

// TestUnknownFieldsStillRefused keeps Caddy's strict reading of the
// gateway's JSON, nested objects included.
func TestUnknownFieldsStillRefused(t *testing.T) {
	t.Parallel()
	for _, extra := range []string{`, "code_tll": "5m"`, `, "lockout": {"failures": 5, "windw": "1h"}`} {
		h := new(Handler)
		err := caddy.StrictUnmarshalJSON([]byte(strings.Replace(valuesJSON, "%s", extra, 1)), h)
		if err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("loading %s = %v, want an unknown field refused", extra, err)
		}
	}
}
