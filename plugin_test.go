package smsrecovery

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

// TestModulesRegistered checks that importing the plugin registers every
// module, as `caddy list-modules` shows them, and that each guest module
// is what its host loads it as and reads its own Caddyfile segment.
func TestModulesRegistered(t *testing.T) {
	t.Parallel()
	want := map[string]func(caddy.Module) bool{
		"http.handlers.sms_recovery":        nil,
		"http.handlers.sms_recovery_verify": nil,
		"admin.api.sms_recovery":            nil,
	}
	isDirectory := func(m caddy.Module) bool { _, ok := m.(recovery.Directory); return ok }
	isSender := func(m caddy.Module) bool { _, ok := m.(sms.Deliverer); return ok }
	isStore := func(m caddy.Module) bool { _, ok := m.(storage.Opener); return ok }
	isWriter := func(m caddy.Module) bool { _, ok := m.(verify.PasswordWriter); return ok }
	for _, name := range []string{"file", "http", "ldap", "sql"} {
		want["http.handlers.sms_recovery.directories."+name] = isDirectory
	}
	for _, name := range []string{"messagebird", "outbox"} {
		want["http.handlers.sms_recovery.senders."+name] = isSender
	}
	for _, name := range []string{"memory", "redis"} {
		want["http.handlers.sms_recovery.storage."+name] = isStore
	}
	for _, name := range []string{"passwd_file", "sql"} {
		want[verify.WriterNamespace+"."+name] = isWriter
	}
	for id, is := range want {
		info, err := caddy.GetModule(id)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if is == nil {
			continue
		}
		m := info.New()
		if !is(m) {
			t.Errorf("%s: %T is not what its host loads", id, m)
		}
		if _, ok := m.(cf.Unmarshaler); !ok {
			t.Errorf("%s: %T reads no Caddyfile", id, m)
		}
	}
}
