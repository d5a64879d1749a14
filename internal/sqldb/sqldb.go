// Package sqldb is what the project's SQL guest modules share: the
// directory http.handlers.sms_recovery.directories.sql and the verifier's
// password writer http.handlers.sms_recovery_verify.writers.sql. It opens a
// pool for PostgreSQL (pgx) or MySQL/MariaDB (go-sql-driver/mysql) from the
// operator's DSN, checks the one statement the operator configures, and
// takes the DSN's password out of error messages.
//
// It must never let a value reach the database other than as a bound
// parameter, nor put the DSN's password into an error.
package sqldb

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Drivers are the driver names a module takes, as in its "driver" field.
var Drivers = []string{"postgres", "mysql"}

// Pool bounds a pool's connections.
type Pool struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// DB is an open pool and the secrets its errors must not show.
type DB struct {
	*sql.DB
	secrets []string
}

// Open opens a pool for driver at dsn, without connecting: a database that
// is down makes the statements fail, not the configuration. An unknown
// driver is an error. A postgres DSN whose default_query_exec_mode is
// simple_protocol is refused, since pgx would then write the parameters
// into the query text; a mysql DSN is opened with InterpolateParams and
// MultiStatements off, for the same reason, and with ClientFoundRows on, so
// that an UPDATE counts the rows it matched, not only those it changed.
func Open(driver, dsn string, pool Pool) (*DB, error) {
	d := &DB{}
	switch driver {
	case "postgres":
		pc, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx masks passwords it recognises; a DSN that does not parse
			// may hide one where it does not look.
			return nil, errors.New("the postgres dsn does not parse (want a postgres:// URL or key=value pairs)")
		}
		if pc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
			return nil, errors.New("default_query_exec_mode=simple_protocol writes the parameters into the query text; use another mode")
		}
		if pc.Password != "" {
			d.secrets = append(d.secrets, pc.Password)
		}
		d.DB = stdlib.OpenDB(*pc)
	case "mysql":
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			// The driver's "invalid DSN" messages are its own words; its
			// others quote a part of the DSN, which may be a password.
			if !strings.HasPrefix(err.Error(), "invalid DSN:") {
				err = errors.New("want user:password@tcp(host:port)/dbname[?param=value&...]")
			}
			return nil, fmt.Errorf("the mysql dsn does not parse: %w", err)
		}
		mc.InterpolateParams = false
		mc.MultiStatements = false
		mc.ClientFoundRows = true
		if mc.Passwd != "" {
			d.secrets = append(d.secrets, mc.Passwd)
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, d.Scrub(err)
		}
		d.DB = sql.OpenDB(conn)
	case "":
		return nil, errors.New("no driver (want postgres or mysql)")
	default:
		return nil, fmt.Errorf("unknown driver %q (want postgres or mysql)", driver)
	}
	d.SetMaxOpenConns(pool.MaxOpenConns)
	d.SetMaxIdleConns(pool.MaxIdleConns)
	d.SetConnMaxLifetime(pool.ConnMaxLifetime)
	return d, nil
}

// Scrub returns err's text, without the DSN's password and with each of
// the values in hide replaced by its name, as a new error: the driver's
// error itself is not kept, since its fields may hold them. hide holds
// pairs: a value, then the name that stands in for it.
func (d *DB) Scrub(err error, hide ...string) error {
	msg := err.Error()
	for _, s := range d.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	for i := 0; i+1 < len(hide); i += 2 {
		if hide[i] != "" {
			msg = strings.ReplaceAll(msg, hide[i], hide[i+1])
		}
	}
	return errors.New(msg)
}

// Statement is the shape of the one statement a module runs: its verb and
// what each of its parameters holds, in order.
type Statement struct {
	Verb   string   // "select" or "update"
	Params []string // e.g. "the account"
}

// Check reports whether query suits driver and s: one statement of s.Verb,
// without comments or a second statement, whose parameters are s.Params:
// $1 to $n for postgres, each used at least once and perhaps more, and no
// other; exactly n ? for mysql, in order. A SELECT must not SELECT ...
// INTO. It reads the query as plain text, quotes and all: a '?', '--' or
// ';' inside a string counts too, and the query is refused, which errs on
// the safe side. The drivers are the second line: every value is a bound
// parameter, and neither runs two statements.
func (s Statement) Check(driver, query string) error {
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
	case len(words) == 0 || words[0] != s.Verb:
		return fmt.Errorf("query must be a single %s", strings.ToUpper(s.Verb))
	case s.Verb == "select" && slices.Contains(words, "into"): // SELECT ... INTO writes a table, a variable or a file
		return errors.New("query must not SELECT ... INTO")
	}
	if driver == "mysql" {
		switch n := strings.Count(q, "?"); {
		case n == 0:
			return fmt.Errorf("query has no parameter ? for %s", s.Params[0])
		case n != len(s.Params):
			return fmt.Errorf("query has %d parameters ?; want %s", n, s.listParams("?"))
		}
		return nil
	}
	used := make([]bool, len(s.Params))
	for _, p := range dollarParam.FindAllString(q, -1) {
		if p == "$" {
			return errors.New("query must hold no dollar-quoted string")
		}
		i := -1
		for j := range s.Params {
			if p == fmt.Sprintf("$%d", j+1) {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("query has the parameter %s; want %s", p, s.listParams("$"))
		}
		used[i] = true
	}
	for i, u := range used {
		if !u {
			return fmt.Errorf("query has no parameter $%d for %s", i+1, s.Params[i])
		}
	}
	return nil
}

// listParams names the parameters, as "$1, the account" or "2: ? for the
// hash, then ? for the account".
func (s Statement) listParams(mark string) string {
	parts := make([]string, len(s.Params))
	for i, p := range s.Params {
		m := mark
		if mark == "$" {
			m = fmt.Sprintf("$%d", i+1)
		}
		parts[i] = m + " for " + p
	}
	if len(parts) == 1 {
		return "only " + parts[0]
	}
	return fmt.Sprintf("%d: %s", len(parts), strings.Join(parts, ", then "))
}

// dollarParam is a postgres parameter, or a "$" that starts a
// dollar-quoted string.
var dollarParam = regexp.MustCompile(`\$[0-9]*`)
