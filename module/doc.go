// Package module holds http.handlers.sms_recovery, the Caddy module of the
// gateway that owns the password-recovery routes of a site: its JSON API
// and the routes of its web pages. The pages themselves are drawn by
// package pages; support's admin API is package admin; the handler that
// checks the gateway's signature in front of an upstream is package verify.
//
// It loads the gateway's guest modules (a directory, an SMS sender and a
// store, which live beside their implementations in packages directory,
// sms and storage), builds the collaborators of the recovery flow from the
// configuration, keeps the state that must survive a reload in
// caddy.UsagePools, maps the flow's outcomes onto HTTP statuses, and
// reports security events to Caddy's logs, metrics and events. It must never log a code, a token, a password or
// a full phone number.
package module
