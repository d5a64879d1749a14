// Package sqlwriter holds the sql password writer of the
// sms_recovery_verify handler: it sets an account's password in a
// PostgreSQL or MySQL/MariaDB table, such as the users table Dovecot's SQL
// passdb reads, with the operator's one UPDATE, hashed in a Dovecot scheme.
//
// It must never change more than one account, never write when the account
// matches no row, and never put the password, its hash or the DSN's
// password into an error or a log.
package sqlwriter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/sqldb"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify/dovecotpw"
)

func init() {
	caddy.RegisterModule(Writer{})
}

// Writer is http.handlers.sms_recovery_verify.writers.sql. JSON:
// {"writer": "sql", "driver": "postgres", "dsn": "{env.MAIL_DB_DSN}",
// "update": "UPDATE users SET password = $1 WHERE username = $2"}.
// Provision opens a pool but does not connect: a database that is down at
// load makes resets fail with 500, and the gateway keeps the reset token
// for another try, not the config. Cleanup closes the connections. It is
// safe for concurrent use.
//
// The UPDATE runs in a transaction, the hash and the account as bound
// parameters. No row matched is verify.ErrUnknownAccount; more than one is
// rolled back and an error, so that a query that matches too much never
// changes two accounts. The table must be transactional (PostgreSQL, or
// InnoDB on MySQL/MariaDB) for that rollback to undo anything.
type Writer struct {
	// Driver is "postgres" (PostgreSQL, through pgx) or "mysql" (MySQL and
	// MariaDB). Required.
	Driver string `json:"driver,omitempty"`

	// DSN says where the database is and who connects: for postgres a
	// postgres:// URL or key=value pairs, for mysql
	// user:password@tcp(host:3306)/dbname. Write the password as a
	// placeholder such as {env.MAIL_DB_PASSWORD}; errors and logs never
	// show it. Connect as a user that may only update the password column.
	// Required.
	DSN string `json:"dsn,omitempty"`

	// Update is the one UPDATE to run, with two parameters: the new hash, then the
	// account; $1 and $2 for postgres (each perhaps used more than once),
	// ? and ? in that order for mysql. E.g. "UPDATE users SET password = $1
	// WHERE username = $2". It must match exactly one row for an account:
	// none is an unknown account (404), two or more are rolled back (500).
	// Required.
	Update string `json:"update,omitempty"`

	// Scheme is the Dovecot password scheme to hash in: BLF-CRYPT,
	// SHA512-CRYPT, ARGON2ID or SSHA512. The column gets the hash with its
	// "{SCHEME}" prefix, which Dovecot reads whatever its
	// default_pass_scheme. Default: BLF-CRYPT.
	Scheme string `json:"scheme,omitempty"`

	// Timeout bounds one write, from taking a connection to the commit;
	// past it nothing is written and the reset fails with 500. Hashing
	// comes before and is not counted. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	db *sqldb.DB
}

// CaddyModule returns the Caddy module information.
func (Writer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  verify.WriterNamespace + ".sql",
		New: func() caddy.Module { return new(Writer) },
	}
}

// updateStatement is the shape of Update.
var updateStatement = sqldb.Statement{Verb: "update", Params: []string{"the hash", "the account"}}

// The pool: a reset is rare, and holds a request open.
var pool = sqldb.Pool{MaxOpenConns: 4, MaxIdleConns: 1, ConnMaxLifetime: 5 * time.Minute}

// Provision expands the DSN's placeholders, fills the defaults and opens
// the pool, without connecting.
func (w *Writer) Provision(caddy.Context) error {
	if err := placeholder.Expand(nil, "password sql: dsn", &w.DSN); err != nil {
		return err
	}
	if w.Scheme == "" {
		w.Scheme = dovecotpw.Schemes[0]
	}
	if w.Timeout == 0 {
		w.Timeout = caddy.Duration(5 * time.Second)
	}
	if w.DSN == "" || !slices.Contains(sqldb.Drivers, w.Driver) {
		return nil // Validate refuses them
	}
	db, err := sqldb.Open(w.Driver, w.DSN, pool)
	if err != nil {
		return fmt.Errorf("password sql: %w", err)
	}
	w.db = db
	return nil
}

// Validate checks the settings: a known driver, a DSN, an UPDATE with two
// parameters that suits the driver, and a scheme.
func (w *Writer) Validate() error {
	if err := updateStatement.Check(w.Driver, w.Update); err != nil {
		return fmt.Errorf("password sql: update: %w", err)
	}
	if err := dovecotpw.Check(w.Scheme); err != nil {
		return fmt.Errorf("password sql: %w", err)
	}
	switch {
	case w.DSN == "":
		return errors.New("password sql: no dsn")
	case w.Timeout < 0:
		return errors.New("password sql: timeout must not be negative")
	}
	return nil
}

// SetPassword hashes password and runs the query for account in a
// transaction, committed only when it matched exactly one row.
func (w *Writer) SetPassword(ctx context.Context, account, password string) error {
	hash, err := dovecotpw.Hash(w.Scheme, password)
	if errors.Is(err, dovecotpw.ErrTooLong) {
		return fmt.Errorf("%w: %w", verify.ErrPasswordTooLong, err)
	} else if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.Timeout))
	defer cancel()
	fail := func(err error) error {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("password sql: %w after %s; nothing written", context.DeadlineExceeded, time.Duration(w.Timeout))
		}
		return fmt.Errorf("password sql: %w", w.db.Scrub(err, hash, "<hash>", password, "<password>"))
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	res, err := tx.ExecContext(ctx, w.Update, hash, account)
	if err != nil {
		return fail(err)
	}
	n, err := res.RowsAffected()
	switch {
	case err != nil:
		return fail(err)
	case n == 0:
		return fmt.Errorf("password sql: %w", verify.ErrUnknownAccount)
	case n > 1:
		return fmt.Errorf("password sql: the update matched %d rows for one account; rolled back, nothing written", n)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// Cleanup closes the connections.
func (w *Writer) Cleanup() error {
	if w.db == nil {
		return nil
	}
	return w.db.Close()
}

// UnmarshalCaddyfile reads
//
//	password sql postgres|mysql <dsn> {
//	    update  "UPDATE users SET password = $1 WHERE username = $2"   # ? and ? for mysql
//	    scheme  BLF-CRYPT|SHA512-CRYPT|ARGON2ID|SSHA512
//	    timeout <duration>
//	}
//
// update is required, and checked here: one UPDATE whose parameters are
// the hash, then the account.
func (w *Writer) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.Err("password sql: a driver and a dsn are required (sql postgres|mysql <dsn>)")
	}
	w.Driver = d.Val()
	if !slices.Contains(sqldb.Drivers, w.Driver) {
		return d.Errf("password sql: unknown driver '%s' (want postgres or mysql)", w.Driver)
	}
	if err := cfparse.Secret(d, "password sql: dsn", &w.DSN); err != nil {
		return err
	}
	err := cfparse.Block(d, "password sql", map[string]func() error{
		"scheme":  func() error { return cfparse.String(d, &w.Scheme) },
		"timeout": func() error { return cfparse.Duration(d, &w.Timeout) },
		"update": func() error {
			if err := cfparse.String(d, &w.Update); err != nil {
				return err
			}
			if err := updateStatement.Check(w.Driver, w.Update); err != nil {
				return d.Errf("password sql: update: %v", err)
			}
			return nil
		},
	})
	if err == nil && w.Update == "" {
		return d.Err(`password sql: update is required (e.g. update "UPDATE users SET password = $1 WHERE username = $2")`)
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Writer)(nil)
	_ caddy.Validator       = (*Writer)(nil)
	_ caddy.CleanerUpper    = (*Writer)(nil)
	_ cf.Unmarshaler        = (*Writer)(nil)
	_ verify.PasswordWriter = (*Writer)(nil)
)
