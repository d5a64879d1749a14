// Package legacymail runs examples/legacy-mail end to end: the example's own
// run script starts a real Dovecot and a real php-fpm, unprivileged, and a
// Caddy built from ./cmd/caddy with the example's Caddyfile, and the tests
// change a mail password the way a person would: an IMAP login with the old
// password, the recovery flow through the gateway with the code read from
// the outbox, then IMAP logins with the new password (accepted) and the old
// one (refused). They then attack the PHP endpoint the way someone on the
// network behind the gateway could: a reset without a signature, a replay of
// the signed reset the endpoint received, and that reset with its body or
// account changed. Each must be refused and leave Dovecot's passwd-file
// byte for byte as it was. Another test runs the passwd-file writer alone,
// with only the PHP CLI: concurrent resets, the mtime Dovecot watches.
//
// TestRoundcubeForgotPassword runs examples/roundcube the same way: Debian's
// Roundcube behind php_fastcgi on Dovecot, with the gateway and the
// verifier's passwd-file writer in the same Caddy, walked in headless
// Chromium from a failed login through the "Forgot password?" link and the
// code from the outbox to Roundcube's inbox with the new password. It needs
// Roundcube (roundcube-core, roundcube-sqlite3) and Chromium besides.
//
// The stack tests need Dovecot (Debian's dovecot-imapd), php-fpm and
// openssl. Without them they skip, unless CI=true, where they fail. Caddy's
// listeners are sockets the test opened on free ports and hands down
// (bind fd/N); Dovecot's IMAP port is a free port chosen just before it
// starts.
//
// The package holds only tests. They must never leave a process behind and
// never write outside their temporary directories.
package legacymail
