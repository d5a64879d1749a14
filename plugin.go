// Package smsrecovery registers the caddy-sms-recovery modules (the
// directories and the memory store among them, a package each), their
// Caddyfile directives and the caddy sms-recovery support command, so that
//
//	xcaddy build --with github.com/caddy-sms-recovery/caddy-sms-recovery
//
// builds a Caddy that has them.
package smsrecovery

import (
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/caddyfile"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/cli"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/file"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/http"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldap"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/sql"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/module"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/verify/ldap"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/verify/passwdfile"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/verify/sql"
)
