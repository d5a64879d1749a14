package module

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// SQLDirectory is a database that holds the phone numbers, such as the
// mailbox table of PostfixAdmin. The account is always sent as a bound
// parameter of the query, never written into it.
type SQLDirectory struct {
	// Driver is "postgres" (PostgreSQL, through pgx) or "mysql" (MySQL and
	// MariaDB).
	Driver string `json:"driver"`

	// DSN says where the database is and who connects: for postgres a
	// postgres:// URL or key=value pairs, for mysql
	// user:password@tcp(host:3306)/dbname. Write the password as a
	// placeholder such as {env.DIRECTORY_DB_PASSWORD}; errors and logs never
	// show it. Connect as a user that may only read the table.
	DSN string `json:"dsn"`

	// Query is one SELECT whose only parameter is the account, in the
	// canonical form of the account rule: $1 for postgres, ? for mysql. It
	// returns at most one row of one or two columns, the phone number and
	// optionally the language, e.g. "SELECT phone FROM mailbox WHERE
	// username = $1 AND active". No row, or a NULL or empty phone, is an
	// unknown account; two rows are an error (503), since the directory is
	// ambiguous.
	Query string `json:"query"`

	// Timeout bounds one lookup, from taking a connection to reading the
	// row; past it the request fails with 503. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxOpenConns bounds the connections open to the database at once.
	// Default: 8.
	MaxOpenConns int `json:"max_open_conns,omitempty"`

	// MaxIdleConns bounds the connections kept open while idle. Default: 4.
	MaxIdleConns int `json:"max_idle_conns,omitempty"`

	// ConnMaxLifetime is how long a connection is used before it is
	// replaced, so that a fail-over or a new password is picked up.
	// Default: 5m.
	ConnMaxLifetime caddy.Duration `json:"conn_max_lifetime,omitempty"`
}

// validate checks the SQL directory, if there is one; every message names
// the directive.
func (s *SQLDirectory) validate() error {
	if s == nil {
		return nil
	}
	var errs []error
	if err := directory.CheckSQLQuery(s.Driver, s.Query); err != nil {
		errs = append(errs, fmt.Errorf("directory sql: %w", err))
	}
	if s.DSN == "" {
		errs = append(errs, errors.New("directory sql: a dsn is required"))
	}
	if s.Timeout < 0 || s.ConnMaxLifetime < 0 || s.MaxOpenConns < 0 || s.MaxIdleConns < 0 {
		errs = append(errs, errors.New("directory sql: timeout, max_open_conns, max_idle_conns and conn_max_lifetime must not be negative"))
	}
	return errors.Join(errs...)
}

// sqlDirectory opens the SQL directory; Cleanup closes its connections.
func (h *Handler) sqlDirectory(s *SQLDirectory) (recovery.Directory, error) {
	d, err := directory.NewSQL(directory.SQLConfig{
		Driver:          s.Driver,
		DSN:             s.DSN,
		Query:           s.Query,
		MaxOpenConns:    s.MaxOpenConns,
		MaxIdleConns:    s.MaxIdleConns,
		ConnMaxLifetime: time.Duration(s.ConnMaxLifetime),
		Timeout:         time.Duration(s.Timeout),
	})
	if err != nil {
		return nil, err // it names the directive
	}
	h.closers = append(h.closers, d.Close)
	return d, nil
}
