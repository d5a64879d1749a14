package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/module"
)

// parseSQLDirectory parses the rest of a directory sql line, the dispenser
// being on "sql". Syntax:
//
//	directory sql postgres|mysql <dsn> {
//	    query             "SELECT phone [, lang] FROM mailbox WHERE username = $1"   # ? for mysql
//	    timeout           <duration>
//	    max_open_conns    <n>
//	    max_idle_conns    <n>
//	    conn_max_lifetime <duration>
//	}
//
// The query is required, and checked here: one SELECT whose only
// parameter is the account.
func parseSQLDirectory(d *cf.Dispenser) (*module.Directory, error) {
	s := &module.SQLDirectory{}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	s.Driver = d.Val()
	if s.Driver != "postgres" && s.Driver != "mysql" {
		return nil, d.Errf("directory sql: unknown driver '%s' (want postgres or mysql)", s.Driver)
	}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	s.DSN = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("directory sql: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "query":
			if err = oneString(d, &s.Query); err == nil {
				if qerr := directory.CheckSQLQuery(s.Driver, s.Query); qerr != nil {
					err = d.Errf("directory sql: %v", qerr)
				}
			}
		case "timeout":
			err = oneDuration(d, &s.Timeout)
		case "max_open_conns":
			err = oneInt(d, &s.MaxOpenConns)
		case "max_idle_conns":
			err = oneInt(d, &s.MaxIdleConns)
		case "conn_max_lifetime":
			err = oneDuration(d, &s.ConnMaxLifetime)
		default:
			return nil, d.Errf("directory sql: unrecognized subdirective '%s'", name)
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Query == "" {
		return nil, d.Err("directory sql: query is required (e.g. query \"SELECT phone FROM mailbox WHERE username = $1\")")
	}
	return &module.Directory{SQL: s}, nil
}
