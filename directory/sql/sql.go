// Package sqldirectory is the directory
// http.handlers.sms_recovery.directories.sql: a PostgreSQL or MySQL/MariaDB
// database asked with the operator's query.
package sqldirectory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/sqldb"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(SQL{})
}

// SQL is the directory http.handlers.sms_recovery.directories.sql: a
// PostgreSQL or MySQL/MariaDB database that holds the phone numbers, such
// as the mailbox table of PostfixAdmin. JSON: {"source": "sql", "driver":
// "postgres", "dsn": "{env.DIRECTORY_DSN}", "query": "SELECT phone FROM
// mailbox WHERE username = $1"}. Provision opens a pool but does not
// connect: a database that is down at load makes lookups fail, not the
// config. Cleanup closes the connections. It is safe for concurrent use.
//
// The account is always sent as a bound parameter, never written into the
// query. No row, and a row whose phone is NULL or empty, is
// recovery.ErrUnknownAccount; more than one row is an error, since an
// ambiguous directory must not pick a phone; so is any failure of the
// database or the timeout. Those errors match recovery.ErrUnavailable, so
// that the flow fails closed, and never hold the DSN's password, the
// account or a phone number.
type SQL struct {
	// Driver is "postgres" (PostgreSQL, through pgx) or "mysql" (MySQL and
	// MariaDB). Required.
	Driver string `json:"driver,omitempty"`

	// DSN says where the database is and who connects: for postgres a
	// postgres:// URL or key=value pairs, for mysql
	// user:password@tcp(host:3306)/dbname. Write the password as a
	// placeholder such as {env.DIRECTORY_DB_PASSWORD}; errors and logs never
	// show it. Connect as a user that may only read the table. Required.
	DSN string `json:"dsn,omitempty"`

	// Query is one SELECT whose only parameter is the account, in the
	// canonical form of the account rule: $1 for postgres, ? for mysql. It
	// returns at most one row of one to three columns: the phone number,
	// optionally the language, and optionally an alternate e-mail address
	// for reset notices (notify; select NULL as the language to give one
	// without the other), e.g. "SELECT phone FROM mailbox WHERE
	// username = $1 AND active". No row, or a NULL or empty phone, is an
	// unknown account; two rows are an error (503), since the directory is
	// ambiguous. Required.
	Query string `json:"query,omitempty"`

	// Timeout bounds one lookup, from taking a connection to reading the
	// row; past it the request fails with 503. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxOpenConns bounds the connections open to the database at once.
	// A lookup holds a request open, so the pool is small. Default: 8.
	MaxOpenConns int `json:"max_open_conns,omitempty"`

	// MaxIdleConns bounds the connections kept open while idle. Default: 4.
	MaxIdleConns int `json:"max_idle_conns,omitempty"`

	// ConnMaxLifetime is how long a connection is used before it is
	// replaced, so that a fail-over or a new password is picked up.
	// Default: 5m.
	ConnMaxLifetime caddy.Duration `json:"conn_max_lifetime,omitempty"`

	db *sqldb.DB
}

// CaddyModule returns the Caddy module information.
func (SQL) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  directory.Namespace + ".sql",
		New: func() caddy.Module { return new(SQL) },
	}
}

// Provision expands the DSN's placeholders, fills the defaults and opens
// the pool, without connecting.
func (s *SQL) Provision(caddy.Context) error {
	if err := placeholder.Expand(nil, "directory sql: dsn", &s.DSN); err != nil {
		return err
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(3 * time.Second)
	}
	if s.MaxOpenConns == 0 {
		s.MaxOpenConns = 8
	}
	if s.MaxIdleConns == 0 {
		s.MaxIdleConns = 4
	}
	if s.ConnMaxLifetime == 0 {
		s.ConnMaxLifetime = caddy.Duration(5 * time.Minute)
	}
	if s.DSN == "" || !slices.Contains(sqldb.Drivers, s.Driver) {
		return nil // Validate refuses them
	}
	db, err := sqldb.Open(s.Driver, s.DSN, sqldb.Pool{MaxOpenConns: s.MaxOpenConns,
		MaxIdleConns: s.MaxIdleConns, ConnMaxLifetime: time.Duration(s.ConnMaxLifetime)})
	if err != nil {
		return fmt.Errorf("directory sql: %w", err)
	}
	s.db = db
	return nil
}

// Validate checks the settings: a known driver, a DSN and a query that
// suits the driver (checkQuery).
func (s *SQL) Validate() error {
	if err := checkQuery(s.Driver, s.Query); err != nil {
		return fmt.Errorf("directory sql: %w", err)
	}
	switch {
	case s.DSN == "":
		return errors.New("directory sql: no dsn")
	case s.Timeout < 0 || s.ConnMaxLifetime < 0 || s.MaxOpenConns < 0 || s.MaxIdleConns < 0:
		return errors.New("directory sql: timeout, max_open_conns, max_idle_conns and conn_max_lifetime must not be negative")
	}
	return nil
}

// Lookup asks the database for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount for no row, a NULL or empty phone and, without
// asking, for a name the rule refuses; and an error matching
// recovery.ErrUnavailable when the database cannot tell.
func (s *SQL) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return s.lookup(ctx, account)
}

// lookup runs the query with account as it is.
func (s *SQL) lookup(ctx context.Context, account string) (recovery.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	rows, err := s.db.QueryContext(ctx, s.Query, account)
	if err != nil {
		return recovery.Entry{}, s.unavailable(ctx, err, account)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return recovery.Entry{}, s.unavailable(ctx, err, account)
	}
	if len(cols) < 1 || len(cols) > 3 {
		return recovery.Entry{}, s.unavailable(ctx, fmt.Errorf("query returns %d columns (want phone, an optional lang and an optional email)", len(cols)), account)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return recovery.Entry{}, s.unavailable(ctx, err, account)
		}
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	var phone, lang, email sql.NullString
	dest := []any{&phone, &lang, &email}[:len(cols)]
	if rows.Scan(dest...) != nil {
		// Left out: a conversion error can quote the value.
		return recovery.Entry{}, s.unavailable(ctx, errors.New("the phone, lang and email columns do not read as text"), account)
	}
	if rows.Next() {
		return recovery.Entry{}, s.unavailable(ctx, errors.New("query returns more than one row for the account (the directory is ambiguous)"), account)
	}
	if err := rows.Err(); err != nil {
		return recovery.Entry{}, s.unavailable(ctx, err, account)
	}
	e := recovery.Entry{Phone: strings.TrimSpace(phone.String), Lang: strings.TrimSpace(lang.String), Email: strings.TrimSpace(email.String)}
	if e.Phone == "" {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return e, nil
}

// Cleanup closes the connections.
func (s *SQL) Cleanup() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// unavailable wraps a failure of the database as an error that matches
// recovery.ErrUnavailable, and context.DeadlineExceeded when the lookup ran
// out of time, with the password and the account taken out of its text.
func (s *SQL) unavailable(ctx context.Context, err error, account string) error {
	if ctx.Err() == context.DeadlineExceeded {
		return directory.Unavailable("sql", fmt.Errorf("%w after %s", context.DeadlineExceeded, time.Duration(s.Timeout)))
	}
	return directory.Unavailable("sql", s.db.Scrub(err, account, "<account>"))
}

// checkQuery reports whether query suits driver ("postgres" or "mysql"):
// one SELECT whose only parameter is the account, $1 for postgres (perhaps
// used more than once), ? for mysql (sqldb.Statement.Check).
func checkQuery(driver, query string) error {
	return sqldb.Statement{Verb: "select", Params: []string{"the account"}}.Check(driver, query)
}

// UnmarshalCaddyfile reads
//
//	directory sql postgres|mysql <dsn> {
//	    query             "SELECT phone [, lang [, email]] FROM mailbox WHERE username = $1"   # ? for mysql
//	    timeout           <duration>
//	    max_open_conns    <n>
//	    max_idle_conns    <n>
//	    conn_max_lifetime <duration>
//	}
//
// The query is required, and checked here: one SELECT whose only parameter
// is the account.
func (s *SQL) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Driver = d.Val()
	if s.Driver != "postgres" && s.Driver != "mysql" {
		return d.Errf("directory sql: unknown driver '%s' (want postgres or mysql)", s.Driver)
	}
	if err := cfparse.Secret(d, "directory sql: dsn", &s.DSN); err != nil {
		return err
	}
	err := cfparse.Block(d, "directory sql", map[string]func() error{
		"timeout":           func() error { return cfparse.Duration(d, &s.Timeout) },
		"max_open_conns":    func() error { return cfparse.Int(d, &s.MaxOpenConns) },
		"max_idle_conns":    func() error { return cfparse.Int(d, &s.MaxIdleConns) },
		"conn_max_lifetime": func() error { return cfparse.Duration(d, &s.ConnMaxLifetime) },
		"query": func() error {
			if err := cfparse.String(d, &s.Query); err != nil {
				return err
			}
			if err := checkQuery(s.Driver, s.Query); err != nil {
				return d.Errf("directory sql: %v", err)
			}
			return nil
		},
	})
	if err == nil && s.Query == "" {
		return d.Err("directory sql: query is required (e.g. query \"SELECT phone FROM mailbox WHERE username = $1\")")
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner  = (*SQL)(nil)
	_ caddy.Validator    = (*SQL)(nil)
	_ caddy.CleanerUpper = (*SQL)(nil)
	_ cf.Unmarshaler     = (*SQL)(nil)
	_ recovery.Directory = (*SQL)(nil)
)
