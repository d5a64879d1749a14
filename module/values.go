package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The least durations a configuration may give. A value below them is a
// mistake, most often a JSON duration written as a bare number, which
// caddy.Duration counts in nanoseconds: "code_ttl": 300 would expire every
// code before its SMS arrives.
const (
	leastCodeTTL        = time.Minute
	leastTokenTTL       = time.Minute
	leastResendInterval = time.Second
	leastWindow         = time.Second // of limit, lockout and ip_block, and their lock's length
)

// durationHint says how a duration is written, for the messages that refuse one.
const (
	bareNumberHint = `in JSON a duration is a string such as "5m" (a bare number counts nanoseconds)`
	spellingHint   = `a duration is a string such as "5m", "90s" or "1h30m"`
)

// atLeast refuses a duration below least, naming the setting.
func atLeast(field string, d caddy.Duration, least time.Duration) error {
	if time.Duration(d) >= least {
		return nil
	}
	return fmt.Errorf("%s: %s is below the least of %s; %s", field, time.Duration(d), shortDuration(least), bareNumberHint)
}

// validateLimits checks the scopes and durations of limits, lockout and
// ip_block, naming each by its JSON path and its Caddyfile line.
func (h *Handler) validateLimits() []error {
	var errs []error
	scopes := make([]string, 0, len(h.Limits))
	for scope := range h.Limits {
		scopes = append(scopes, scope)
	}
	slices.Sort(scopes)
	for _, scope := range scopes {
		if !contains(limitScopes, scope) {
			errs = append(errs, fmt.Errorf("limit: unknown scope %q (want one of %s)", scope, strings.Join(limitScopes, ", ")))
			continue
		}
		field := fmt.Sprintf("limits: %s: window (limit %s <events> <window>)", scope, scope)
		errs = append(errs, atLeast(field, h.Limits[scope].Window, leastWindow))
	}
	for _, th := range []struct {
		name string
		t    *Threshold
	}{{"lockout", h.Lockout}, {"ip_block", h.IPBlock}} {
		if th.t == nil {
			continue
		}
		line := fmt.Sprintf("(%s <failures> <window> <duration>)", th.name)
		errs = append(errs, atLeast(th.name+": window "+line, th.t.Window, leastWindow),
			atLeast(th.name+": duration "+line, th.t.Duration, leastWindow))
	}
	return errs
}

// UnmarshalJSON reads the gateway's JSON as Caddy does, unknown fields
// refused, and names the setting whose duration does not parse, which
// caddy.Duration's own error leaves out.
func (h *Handler) UnmarshalJSON(b []byte) error {
	type plain Handler // without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(h)); err != nil {
		if named := nameBadDuration(b); named != nil {
			return named
		}
		return err
	}
	return nil
}

// nameBadDuration finds the first duration of the gateway's JSON that does
// not parse, and says which it is; nil if every one parses.
func nameBadDuration(b []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return nil
	}
	try := func(path string, raw json.RawMessage) error {
		var d caddy.Duration
		if raw == nil {
			return nil
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("%s: %w; %s", path, err, spellingHint)
		}
		return nil
	}
	fields := func(raw json.RawMessage) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		return m
	}
	for _, key := range []string{"code_ttl", "resend_interval", "token_ttl"} {
		if err := try(key, top[key]); err != nil {
			return err
		}
	}
	limits := fields(top["limits"])
	scopes := make([]string, 0, len(limits))
	for scope := range limits {
		scopes = append(scopes, scope)
	}
	slices.Sort(scopes)
	for _, scope := range scopes {
		if err := try("limits: "+scope+": window", fields(limits[scope])["window"]); err != nil {
			return err
		}
	}
	for _, name := range []string{"lockout", "ip_block"} {
		t := fields(top[name])
		for _, key := range []string{"window", "duration"} {
			if err := try(name+": "+key, t[key]); err != nil {
				return err
			}
		}
	}
	return nil
}
