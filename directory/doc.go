// Package directory is where the phone numbers of accounts come from, and
// which of them may receive a code.
//
// A directory is a Caddy guest module of the namespace
// http.handlers.sms_recovery.directories (see Namespace) that implements
// recovery.Directory, one package each: file (a JSON file, followed as it
// changes), http (a web service asked with a signed request), ldap (a
// subtree search through a small pool of bound connections, the account
// escaped per RFC 4515) and sql (the operator's query, the account a bound
// parameter). A third party adds a source the same way, in a package of its
// own. All know accounts by recovery.NormalizeAccount, the rule the flow
// applies to what a person types. An account without a phone number is
// recovery.ErrUnknownAccount, and a directory that cannot answer is an error
// matching recovery.ErrUnavailable (Unavailable), so that the flow fails
// closed.
//
// This package keeps what they share: the namespace, the request signer and
// the phone check the gateway hands them through the caddy.Context, and
// PhonePolicy, a recovery.PhonePolicy over libphonenumber's metadata: only
// valid mobile numbers, optionally of some countries, are texted;
// premium-rate, shared-cost, toll-free and VoIP numbers never are.
//
// No directory may put a phone number in an error or a log line
// (recovery.MaskPhone exists for callers that must show one), nor answer
// "unknown account" when it could not actually tell.
package directory
