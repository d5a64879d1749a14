// Package writers runs the password writers of sms_recovery_verify end to
// end, one test per store a real Dovecot reads: a passwd-file (passwd_file),
// a PostgreSQL table and a MariaDB table (sql). Each test starts a Caddy
// built from ./cmd/caddy with sms_recovery_verify and the writer, and an
// unprivileged Dovecot whose passdb is that store; it posts a reset signed
// as the gateway signs it, then logs in over IMAP: the new password works
// and the old one no longer does. The SQL tests also cut the writer's link
// to the database: the reset fails with 500 and changes nothing, and a
// fresh signed reset succeeds once the link is back, as the gateway's retry
// with the same reset token would.
//
// The tests need Dovecot with its SQL drivers (Debian's dovecot-imapd,
// dovecot-pgsql and dovecot-mysql), libfaketime, and the PostgreSQL and
// MariaDB of docs/development.md. Without them they skip, unless CI=true,
// where they fail. Caddy's listeners are sockets the test opened on free
// ports and hands down (bind fd/N); Dovecot's IMAP port is a free port
// chosen just before it starts.
//
// The package holds only tests. They must never leave a process behind,
// never touch a table but their own, and never write outside their
// temporary directories.
package writers
