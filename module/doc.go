// Package module holds the Caddy modules of caddy-sms-recovery:
// http.handlers.sms_recovery, the gateway that owns the password-recovery
// routes of a site and its web pages; http.handlers.sms_recovery_verify,
// which checks the signature the gateway puts on the reset it forwards; and
// admin.api.sms_recovery, through which support lists and lifts locks.
//
// It loads the gateway's guest modules (a directory, an SMS sender and a
// store, which live beside their implementations in packages directory,
// sms and storage), builds the collaborators of the recovery flow from the
// configuration,
// keeps the state that must survive a reload in caddy.UsagePools, maps the
// flow's outcomes onto HTTP statuses, and reports security events to Caddy's
// logs, metrics and events. It must never log a code, a token, a password or
// a full phone number.
package module
