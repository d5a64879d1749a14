// Package ldapwriter runs the ldap password writer (verify/ldap) against
// what reads its passwords: a real slapd (directory/ldaptest) and a real
// Dovecot whose passdb is that slapd. After a write, an IMAP login with the
// new password must succeed and one with the old password must fail, in
// both modes:
//
//   - replace: Dovecot reads userPassword itself (auth_bind = no) and checks
//     the {CRYPT} or {SSHA512} hash the writer stored;
//   - passwd_modify: the server chose the hash, so Dovecot binds as the
//     user (auth_bind = yes) and slapd checks the password. A mail server
//     that reads the hash instead works only while slapd's olcPasswordHash
//     is a scheme it knows.
//
// sms_recovery_verify with the writer answers signed resets as the gateway
// sends them: 204 once set, 404 for an unknown account or one made of
// filter metacharacters, 500 while slapd is down, nothing written but the
// good one. And the password ldap example of docs/upstream.md passes what
// caddy validate checks.
//
// The tests need slapd and ldap-utils, Dovecot (dovecot-imapd) and its LDAP
// driver (dovecot-ldap). Without them they skip, unless CI=true, where they
// fail. Dovecot runs unprivileged (as nobody when the tests run as root)
// with every file in a temporary directory, its IMAP port a free one.
//
// The package holds only tests. They must never leave a process behind and
// never write outside their temporary directories.
package ldapwriter
