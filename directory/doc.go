// Package directory is where the phone numbers of accounts come from, and
// which of them may receive a code.
//
// File reads a JSON file and follows its changes; HTTP asks a web service
// with a signed request; LDAP searches a directory server through a small
// pool of bound connections, with the account escaped per RFC 4515. All
// know accounts by recovery.NormalizeAccount, the rule the flow applies to
// what a person types: File normalises its keys when it loads them, HTTP
// and LDAP ask for the normalised name. All implement recovery.Directory:
// an account
// without a phone number is recovery.ErrUnknownAccount, and a directory that
// cannot answer is an error matching recovery.ErrUnavailable, so that the
// flow fails closed. PhonePolicy implements recovery.PhonePolicy over
// libphonenumber's metadata: only valid mobile numbers, optionally of some
// countries, are texted; premium-rate, shared-cost, toll-free and VoIP
// numbers never are.
//
// FileModule, HTTPModule, LDAPModule and SQLModule are the same directories
// as Caddy guest modules of the namespace
// http.handlers.sms_recovery.directories (see Namespace): each file
// *_module.go is a thin wrapper, and the only code here that imports Caddy.
// A third party adds a source the same way, in a package of its own.
//
// The package must never put a phone number in an error or a log line
// (recovery.MaskPhone exists for callers that must show one), and never
// answer "unknown account" when it could not actually tell.
package directory
