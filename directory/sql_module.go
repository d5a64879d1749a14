package directory

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/cfparse"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(SQLModule{})
}

// SQLModule is the directory http.handlers.sms_recovery.directories.sql: a
// PostgreSQL or MySQL/MariaDB database that holds the phone numbers, such as
// the mailbox table of PostfixAdmin (see SQL). The account is always sent
// as a bound parameter of the query, never written into it. JSON:
// {"source": "sql", "driver": "postgres", "dsn": "{env.DIRECTORY_DSN}",
// "query": "SELECT phone FROM mailbox WHERE username = $1"}. Cleanup closes
// its connections.
type SQLModule struct {
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
	// returns at most one row of one or two columns, the phone number and
	// optionally the language, e.g. "SELECT phone FROM mailbox WHERE
	// username = $1 AND active". No row, or a NULL or empty phone, is an
	// unknown account; two rows are an error (503), since the directory is
	// ambiguous. Required.
	Query string `json:"query,omitempty"`

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

	dir *SQL
}

// CaddyModule returns the Caddy module information.
func (SQLModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".sql",
		New: func() caddy.Module { return new(SQLModule) },
	}
}

// Provision expands the DSN's placeholders, checks the settings and opens
// the pool. It does not connect: a database that is down at load makes
// lookups fail, not the config.
func (m *SQLModule) Provision(caddy.Context) error {
	if err := placeholder.Expand(nil, "directory sql: dsn", &m.DSN); err != nil {
		return err
	}
	d, err := NewSQL(SQLConfig{
		Driver:          m.Driver,
		DSN:             m.DSN,
		Query:           m.Query,
		MaxOpenConns:    m.MaxOpenConns,
		MaxIdleConns:    m.MaxIdleConns,
		ConnMaxLifetime: time.Duration(m.ConnMaxLifetime),
		Timeout:         time.Duration(m.Timeout),
	})
	if err != nil {
		return err // it names the directive
	}
	m.dir = d
	return nil
}

// Lookup implements recovery.Directory.
func (m *SQLModule) Lookup(ctx context.Context, account string) (recovery.Entry, error) {
	return m.dir.Lookup(ctx, account)
}

// Cleanup closes the connections.
func (m *SQLModule) Cleanup() error {
	if m.dir == nil {
		return nil
	}
	return m.dir.Close()
}

// UnmarshalCaddyfile reads
//
//	directory sql postgres|mysql <dsn> {
//	    query             "SELECT phone [, lang] FROM mailbox WHERE username = $1"   # ? for mysql
//	    timeout           <duration>
//	    max_open_conns    <n>
//	    max_idle_conns    <n>
//	    conn_max_lifetime <duration>
//	}
//
// The query is required, and checked here: one SELECT whose only parameter
// is the account.
func (m *SQLModule) UnmarshalCaddyfile(d *cf.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	m.Driver = d.Val()
	if m.Driver != "postgres" && m.Driver != "mysql" {
		return d.Errf("directory sql: unknown driver '%s' (want postgres or mysql)", m.Driver)
	}
	if err := cfparse.String(d, &m.DSN); err != nil {
		return err
	}
	seen := cfparse.Seen{}
	for d.NextBlock(0) {
		name := d.Val()
		if err := seen.Once(d, "directory sql"); err != nil {
			return err
		}
		var err error
		switch name {
		case "query":
			if err = cfparse.String(d, &m.Query); err == nil {
				if qerr := CheckSQLQuery(m.Driver, m.Query); qerr != nil {
					err = d.Errf("directory sql: %v", qerr)
				}
			}
		case "timeout":
			err = cfparse.Duration(d, &m.Timeout)
		case "max_open_conns":
			err = cfparse.Int(d, &m.MaxOpenConns)
		case "max_idle_conns":
			err = cfparse.Int(d, &m.MaxIdleConns)
		case "conn_max_lifetime":
			err = cfparse.Duration(d, &m.ConnMaxLifetime)
		default:
			return d.Errf("directory sql: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	if m.Query == "" {
		return d.Err("directory sql: query is required (e.g. query \"SELECT phone FROM mailbox WHERE username = $1\")")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*SQLModule)(nil)
	_ caddy.CleanerUpper = (*SQLModule)(nil)
	_ cf.Unmarshaler     = (*SQLModule)(nil)
	_ recovery.Directory = (*SQLModule)(nil)
)
