// Package sqldirectory is the directory
// http.handlers.sms_recovery.directories.sql: a PostgreSQL or MySQL/MariaDB
// database asked with the operator's query.
package sqldirectory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
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

	db             *sql.DB
	simpleProtocol bool     // the DSN asks pgx to write parameters into the query text
	secrets        []string // removed from every error message
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
	switch s.Driver {
	case "postgres":
		pc, err := pgx.ParseConfig(s.DSN)
		if err != nil {
			// pgx masks passwords it recognises; a DSN that does not parse
			// may hide one where it does not look.
			return errors.New("directory sql: the postgres dsn does not parse (want a postgres:// URL or key=value pairs)")
		}
		s.simpleProtocol = pc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol
		if pc.Password != "" {
			s.secrets = append(s.secrets, pc.Password)
		}
		s.db = stdlib.OpenDB(*pc)
	case "mysql":
		mc, err := mysql.ParseDSN(s.DSN)
		if err != nil {
			// The driver's "invalid DSN" messages are its own words; its
			// others quote a part of the DSN, which may be a password.
			if !strings.HasPrefix(err.Error(), "invalid DSN:") {
				err = errors.New("want user:password@tcp(host:port)/dbname[?param=value&...]")
			}
			return fmt.Errorf("directory sql: the mysql dsn does not parse: %w", err)
		}
		// The account goes to the server as a parameter of a prepared
		// statement, and the query is one statement.
		mc.InterpolateParams = false
		mc.MultiStatements = false
		if mc.Passwd != "" {
			s.secrets = append(s.secrets, mc.Passwd)
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return fmt.Errorf("directory sql: %w", s.scrub(err, ""))
		}
		s.db = sql.OpenDB(conn)
	default:
		return nil // Validate refuses the driver
	}
	s.db.SetMaxOpenConns(s.MaxOpenConns)
	s.db.SetMaxIdleConns(s.MaxIdleConns)
	s.db.SetConnMaxLifetime(time.Duration(s.ConnMaxLifetime))
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
	case s.simpleProtocol:
		return errors.New("directory sql: default_query_exec_mode=simple_protocol writes the account into the query text; use another mode")
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
	return directory.Unavailable("sql", s.scrub(err, account))
}

// scrub returns err's text without the password or account; the driver's
// error itself is not kept, since its fields may hold them.
func (s *SQL) scrub(err error, account string) error {
	msg := err.Error()
	for _, s := range s.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	if account != "" {
		msg = strings.ReplaceAll(msg, account, "<account>")
	}
	return errors.New(msg)
}

// checkQuery reports whether query suits driver ("postgres" or "mysql"):
// one SELECT, without comments, INTO or a second statement, whose only
// parameter is the account: $1 (perhaps used more than once) for postgres,
// exactly one ? for mysql. It reads the query as plain text, quotes and
// all: a '?', '--' or ';' inside a string counts too, and the query is
// refused, which errs on the safe side. The drivers are the second line:
// the account is always a bound parameter, and neither runs two statements.
func checkQuery(driver, query string) error {
	want := map[string]string{"postgres": "$1", "mysql": "?"}[driver]
	switch {
	case driver == "":
		return errors.New("no driver (want postgres or mysql)")
	case want == "":
		return fmt.Errorf("unknown driver %q (want postgres or mysql)", driver)
	}
	q := strings.TrimSuffix(strings.TrimSpace(query), ";")
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return r != '_' && (r < 'a' || r > 'z') && (r < '0' || r > '9') && r < 0x80
	})
	switch {
	case q == "":
		return errors.New("no query")
	case strings.Contains(q, ";"):
		return errors.New("query must be a single statement")
	case strings.Contains(q, "--") || strings.Contains(q, "/*") || driver == "mysql" && strings.Contains(q, "#"):
		return errors.New("query must hold no comment")
	case len(words) == 0 || words[0] != "select":
		return errors.New("query must be a single SELECT")
	case slices.Contains(words, "into"): // SELECT ... INTO writes a table, a variable or a file
		return errors.New("query must not SELECT ... INTO")
	}
	params := strings.Count(q, "?")
	if driver == "postgres" {
		params = 0
		for _, p := range dollarParam.FindAllString(q, -1) {
			if p == "$" {
				return errors.New("query must hold no dollar-quoted string")
			}
			if p != "$1" {
				return fmt.Errorf("query has the parameter %s; the account is its only parameter, $1", p)
			}
			params++
		}
	}
	switch {
	case params == 0:
		return fmt.Errorf("query has no parameter %s for the account", want)
	case driver == "mysql" && params > 1:
		return fmt.Errorf("query has %d parameters ?; the account is its only parameter, ?", params)
	}
	return nil
}

// dollarParam is a postgres parameter, or a "$" that starts a
// dollar-quoted string.
var dollarParam = regexp.MustCompile(`\$[0-9]*`)

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
