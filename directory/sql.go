package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// Defaults of an SQL directory. A lookup holds a request open, so the pool
// is small and the timeout short; connections are renewed now and then so
// that a fail-over or a rotated password is picked up.
const (
	DefaultSQLTimeout         = 3 * time.Second
	DefaultSQLMaxOpenConns    = 8
	DefaultSQLMaxIdleConns    = 4
	DefaultSQLConnMaxLifetime = 5 * time.Minute
)

// SQLConfig configures an SQL directory.
type SQLConfig struct {
	// Driver is "postgres" (through pgx) or "mysql" (MySQL and MariaDB).
	Driver string
	// DSN says where the database is: for postgres a postgres:// URL or
	// key=value pairs, for mysql user:password@tcp(host:port)/dbname. Errors
	// never quote it.
	DSN string
	// Query is one SELECT with exactly one parameter, the account: $1 for
	// postgres, ? for mysql. It returns at most one row of one or two
	// columns: the phone number and, optionally, the language.
	Query string
	// MaxOpenConns bounds the connections open at once. Default: 8.
	MaxOpenConns int
	// MaxIdleConns bounds the connections kept open while idle. Default: 4.
	MaxIdleConns int
	// ConnMaxLifetime is how long a connection is used before it is
	// replaced. Default: 5m.
	ConnMaxLifetime time.Duration
	// Timeout bounds each lookup, from taking a connection to reading the
	// row. Default: 3s.
	Timeout time.Duration
}

// SQL is a recovery.Directory that asks a database, such as the mailbox
// table of PostfixAdmin. It is safe for concurrent use.
//
// The account is always sent as a bound parameter, never written into the
// query. No row, and a row whose phone is NULL or empty, is
// recovery.ErrUnknownAccount; more than one row is an error, since an
// ambiguous directory must not pick a phone; so is any failure of the
// database or the timeout. Those errors match recovery.ErrUnavailable, so
// that the flow fails closed, and never hold the DSN's password, the
// account or a phone number.
type SQL struct {
	db      *sql.DB
	query   string
	timeout time.Duration
	secrets []string // removed from every error message
}

// NewSQL checks the configuration and returns the directory. It does not
// connect: a database that is down at start makes lookups fail, not the
// configuration.
func NewSQL(cfg SQLConfig) (*SQL, error) {
	if err := CheckSQLQuery(cfg.Driver, cfg.Query); err != nil {
		return nil, fmt.Errorf("directory sql: %w", err)
	}
	if cfg.DSN == "" {
		return nil, errors.New("directory sql: no dsn")
	}
	if cfg.Timeout < 0 || cfg.ConnMaxLifetime < 0 || cfg.MaxOpenConns < 0 || cfg.MaxIdleConns < 0 {
		return nil, errors.New("directory sql: timeout, max_open_conns, max_idle_conns and conn_max_lifetime must not be negative")
	}
	d := &SQL{query: cfg.Query, timeout: orDefault(cfg.Timeout, DefaultSQLTimeout)}
	switch cfg.Driver {
	case "postgres":
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			// pgx masks passwords it recognises; a DSN that does not parse
			// may hide one where it does not look.
			return nil, errors.New("directory sql: the postgres dsn does not parse (want a postgres:// URL or key=value pairs)")
		}
		// The simple protocol writes parameters into the query text.
		if pc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
			return nil, errors.New("directory sql: default_query_exec_mode=simple_protocol writes the account into the query text; use another mode")
		}
		if pc.Password != "" {
			d.secrets = append(d.secrets, pc.Password)
		}
		d.db = stdlib.OpenDB(*pc)
	case "mysql":
		mc, err := mysql.ParseDSN(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("directory sql: the mysql dsn does not parse: %w", err)
		}
		// The account goes to the server as a parameter of a prepared
		// statement, and the query is one statement.
		mc.InterpolateParams = false
		mc.MultiStatements = false
		if mc.Passwd != "" {
			d.secrets = append(d.secrets, mc.Passwd)
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("directory sql: %w", d.scrub(err, ""))
		}
		d.db = sql.OpenDB(conn)
	}
	d.db.SetMaxOpenConns(orDefault(cfg.MaxOpenConns, DefaultSQLMaxOpenConns))
	d.db.SetMaxIdleConns(orDefault(cfg.MaxIdleConns, DefaultSQLMaxIdleConns))
	d.db.SetConnMaxLifetime(orDefault(cfg.ConnMaxLifetime, DefaultSQLConnMaxLifetime))
	return d, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Lookup asks the database for account's entry, with the account
// normalised by recovery.NormalizeAccount. It returns
// recovery.ErrUnknownAccount for no row, a NULL or empty phone and, without
// asking, for a name the rule refuses; and an error matching
// recovery.ErrUnavailable when the database cannot tell.
func (d *SQL) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	account, err := recovery.NormalizeAccount(account)
	if err != nil {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return d.lookup(ctx, account)
}

// lookup runs the query with account as it is.
func (d *SQL) lookup(ctx context.Context, account string) (recovery.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.query, account)
	if err != nil {
		return recovery.Entry{}, d.unavailable(ctx, err, account)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return recovery.Entry{}, d.unavailable(ctx, err, account)
	}
	if len(cols) != 1 && len(cols) != 2 {
		return recovery.Entry{}, d.unavailable(ctx, fmt.Errorf("query returns %d columns (want phone and an optional lang)", len(cols)), account)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return recovery.Entry{}, d.unavailable(ctx, err, account)
		}
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	var phone, lang sql.NullString
	dest := []any{&phone, &lang}[:len(cols)]
	if rows.Scan(dest...) != nil {
		// Left out: a conversion error can quote the value.
		return recovery.Entry{}, d.unavailable(ctx, errors.New("the phone and lang columns do not read as text"), account)
	}
	if rows.Next() {
		return recovery.Entry{}, d.unavailable(ctx, errors.New("query returns more than one row for the account (the directory is ambiguous)"), account)
	}
	if err := rows.Err(); err != nil {
		return recovery.Entry{}, d.unavailable(ctx, err, account)
	}
	e := recovery.Entry{Phone: strings.TrimSpace(phone.String), Lang: strings.TrimSpace(lang.String)}
	if e.Phone == "" {
		return recovery.Entry{}, recovery.ErrUnknownAccount
	}
	return e, nil
}

// Close closes the connections.
func (d *SQL) Close() error {
	return d.db.Close()
}

// unavailable wraps a failure of the database as an error that matches
// recovery.ErrUnavailable, and context.DeadlineExceeded when the lookup ran
// out of time, with the password and the account taken out of its text.
func (d *SQL) unavailable(ctx context.Context, err error, account string) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("directory sql: %w: %w after %s", recovery.ErrUnavailable, context.DeadlineExceeded, d.timeout)
	}
	return fmt.Errorf("directory sql: %w: %w", recovery.ErrUnavailable, d.scrub(err, account))
}

// scrub returns err's text without the password or account; the driver's
// error itself is not kept, since its fields may hold them.
func (d *SQL) scrub(err error, account string) error {
	msg := err.Error()
	for _, s := range d.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	if account != "" {
		msg = strings.ReplaceAll(msg, account, "<account>")
	}
	return errors.New(msg)
}

// CheckSQLQuery reports whether query suits driver ("postgres" or
// "mysql"): one SELECT statement, without comments, INTO or a second
// statement, whose only parameter is the account: $1 (perhaps used more
// than once) for postgres, exactly one ? for mysql. Quoted strings and
// identifiers are skipped, so a '$2' or '?' in them does not count.
func CheckSQLQuery(driver, query string) error {
	var mysqlish bool
	switch driver {
	case "postgres":
	case "mysql":
		mysqlish = true
	case "":
		return errors.New("no driver (want postgres or mysql)")
	default:
		return fmt.Errorf("unknown driver %q (want postgres or mysql)", driver)
	}
	q := strings.TrimSpace(query)
	if q == "" {
		return errors.New("no query")
	}
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	var (
		words  []string
		params int
		other  []string // placeholders other than the account's
	)
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || (mysqlish && c == '`'):
			end, ok := skipQuoted(q, i, mysqlish)
			if !ok {
				return errors.New("query has an unterminated quote")
			}
			i = end
			continue
		case c == '-' && strings.HasPrefix(q[i:], "--"), c == '/' && strings.HasPrefix(q[i:], "/*"), mysqlish && c == '#':
			return errors.New("query must hold no comment")
		case c == ';':
			return errors.New("query must be a single statement")
		case c == '?' && mysqlish:
			params++
		case c == '$' && !mysqlish:
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j == i+1 {
				return errors.New("query must hold no dollar-quoted string")
			}
			if q[i:j] == "$1" {
				params++
			} else {
				other = append(other, q[i:j])
			}
			i = j
			continue
		case isWordByte(c):
			j := i
			for j < len(q) && (isWordByte(q[j]) || q[j] >= '0' && q[j] <= '9') {
				j++
			}
			words = append(words, strings.ToLower(q[i:j]))
			i = j
			continue
		}
		i++
	}
	if len(words) == 0 || words[0] != "select" {
		return errors.New("query must be a single SELECT")
	}
	for _, w := range words {
		if w == "into" { // SELECT ... INTO writes a table, a variable or a file
			return errors.New("query must not SELECT ... INTO")
		}
	}
	want := "$1"
	if mysqlish {
		want = "?"
	}
	switch {
	case len(other) > 0:
		return fmt.Errorf("query has the parameter %s; the account is its only parameter, %s", other[0], want)
	case params == 0:
		return fmt.Errorf("query has no parameter %s for the account", want)
	case mysqlish && params > 1:
		return fmt.Errorf("query has %d parameters ?; the account is its only parameter, ?", params)
	}
	return nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipQuoted returns the index just past the quoted string or identifier
// that starts at q[i]. A doubled quote stands for itself; in mysql a
// backslash escapes the next byte inside a string.
func skipQuoted(q string, i int, mysqlish bool) (int, bool) {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch {
		case mysqlish && quote != '`' && q[j] == '\\':
			j++
		case q[j] == quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

// Interface guards
var _ recovery.Directory = (*SQL)(nil)
