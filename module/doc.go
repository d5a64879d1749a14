// Package module holds the Caddy handlers of caddy-sms-recovery:
// http.handlers.sms_recovery, the gateway that owns the password-recovery
// routes of a site, and http.handlers.sms_recovery_verify, which checks the
// signature the gateway puts on the reset it forwards.
//
// It builds the collaborators of the recovery flow from the configuration,
// maps the flow's outcomes onto HTTP statuses, and reports security events
// to Caddy's logs, metrics and events. It must never log a code, a token, a
// password or a full phone number.
package module
