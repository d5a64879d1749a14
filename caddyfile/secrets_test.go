package caddyfile_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// marker is in every secret of TestMistakesShowNoSecret: base64 letters,
// so that a key holding it decodes.
const marker = "S3CRETMARKER"

// TestMistakesShowNoSecret feeds configurations that hold secrets and a
// mistake (a key split over two lines, a URL or DSN that does not parse)
// to the Caddyfile adapter and, when they adapt, loads the JSON as
// `caddy validate` does: no error, adapter warning or log line of the load
// may hold any part of a secret.
func TestMistakesShowNoSecret(t *testing.T) {
	const (
		key     = "hmac_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
		forward = "forward {\n key_id gw1\n " + key + "\n}\n"
		outbox  = "sms outbox $TMP/outbox.jsonl\n"
		dir     = "directory file $TMP/phones.json\n"
		// secretLine is a key split over two lines, marker in both halves.
		half1 = marker + "0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		half2 = marker + "1BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=="
	)
	gateway := func(body string) string {
		return "http://mail.example.com {\n sms_recovery {\n  public_url https://mail.example.com\n" +
			body + " }\n reverse_proxy 127.0.0.1:9\n}\n"
	}
	verifier := func(body string) string {
		return "http://legacy.internal {\n sms_recovery_verify {\n  key_id gw1\n" + body + " }\n respond 204\n}\n"
	}
	cases := []struct {
		name, caddyfile string
		want            string // part of the error
	}{
		{"forward hmac_key split", gateway(dir + outbox + "forward {\n key_id gw1\n hmac_key " + half1 + "\n" + half2 + "\n}\n"),
			"not shown"},
		{"forward hmac_key two values", gateway(dir + outbox + "forward {\n key_id gw1\n hmac_key " + half1 + " " + half2 + "\n}\n"),
			"hmac_key"},
		{"forward hmac_key not base64", gateway(dir + outbox + "forward {\n key_id gw1\n hmac_key " + marker + "!!\n}\n"),
			"hmac_key is not base64"},
		{"forward ed25519_key split", gateway(dir + outbox + "forward {\n key_id gw1\n ed25519_key /etc/caddy/" + half1 + "\n" + half2 + ".pem\n}\n"),
			"not shown"},
		{"secret split", gateway(dir + outbox + forward + "secret " + half1 + "\n" + half2 + "\n"),
			"not shown"},
		{"secret split lowercase", gateway(dir + outbox + forward + "secret " + half1 + "\nfoo\n"),
			"not shown"},
		{"secret not base64", gateway(dir + outbox + forward + "secret " + marker + "!!\n"),
			"secret: value 1"},
		{"messagebird access_key split", gateway(dir + forward + "sms messagebird {\n access_key " + half1 + "\n" + half2 + "\n originator Example\n}\n"),
			"not shown"},
		{"messagebird access_key two values", gateway(dir + forward + "sms messagebird {\n access_key " + half1 + " " + half2 + "\n originator Example\n}\n"),
			"access_key"},
		{"messagebird endpoint with credentials", gateway(dir + forward + "sms messagebird {\n access_key " + half1 + "\n originator Example\n endpoint \"https://u:" + marker + "@rest example.com\"\n}\n"),
			"endpoint"},
		{"sms http bearer split", gateway(dir + forward + "sms http https://sms.example.com/send {\n bearer " + half1 + "\n" + half2 + "\n form to {{.To}}\n form text {{.Text}}\n}\n"),
			"not shown"},
		{"sms http basic_auth three values", gateway(dir + forward + "sms http https://sms.example.com/send {\n basic_auth gw " + half1 + " " + half2 + "\n form to {{.To}}\n form text {{.Text}}\n}\n"),
			"basic_auth"},
		{"sms http form password split", gateway(dir + forward + "sms http https://sms.example.com/send {\n form password " + half1 + "\n" + half2 + "\n form to {{.To}}\n form text {{.Text}}\n}\n"),
			"not shown"},
		{"sms http url credentials", gateway(dir + forward + "sms http \"https://gw:" + marker + "@sms.example.com/send?password=" + marker + "\" {\n form to {{.To}}\n form text {{.Text}}\n}\n"),
			"use basic_auth"},
		{"sms http no text", gateway(dir + forward + "sms http \"ftp://sms.example.com/send?password=" + marker + "\" {\n form to {{.To}}\n form key " + marker + "\n}\n"),
			"not an http or https URL"},
		{"delivery_reports bird_secret not base64", gateway(dir + outbox + forward + "delivery_reports {\n bird_secret whsec_" + marker + "!!\n}\n"),
			"bird_secret"},
		{"delivery_reports bird_secret split", gateway(dir + outbox + forward + "delivery_reports {\n bird_secret whsec_" + half1 + "\n" + half2 + "\n}\n"),
			"not shown"},
		{"redis url split", gateway(dir + outbox + forward + "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nstorage redis redis://:" + half1 + "\n" + half2 + "@127.0.0.1:1/0\n"),
			"not shown"},
		{"redis url two values", gateway(dir + outbox + forward + "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nstorage redis redis://:" + half1 + " " + half2 + "@127.0.0.1:1/0\n"),
			"storage redis"},
		{"redis url bad port", gateway(dir + outbox + forward + "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nstorage redis \"redis://:" + marker + "@127.0.0.1:port/0\"\n"),
			"redis"},
		{"redis url bad escape", gateway(dir + outbox + forward + "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nstorage redis \"redis://:" + marker + "%zz@127.0.0.1:6379/0\"\n"),
			"redis"},
		{"sentinel url bad", gateway(dir + outbox + forward + "secret AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nstorage redis \"redis-sentinel://:" + marker + "%zz@127.0.0.1:26379/0?master_name=m\"\n"),
			"redis"},
		{"nonce_store url split", verifier(" " + key + "\n nonce_store redis redis://:" + half1 + "\n" + half2 + "@127.0.0.1:1/0\n"),
			"not shown"},
		{"nonce_store url bad", verifier(" " + key + "\n nonce_store redis \"redis://:" + marker + "%zz@127.0.0.1:6379/0\"\n"),
			"redis"},
		{"verify hmac_key split", verifier(" hmac_key " + half1 + "\n" + half2 + "\n"),
			"not shown"},
		{"verify hmac_key two values", verifier(" hmac_key " + half1 + " " + half2 + "\n"),
			"hmac_key"},
		{"verify key line split", verifier(" " + key + "\n key gw2 hmac_key " + half1 + "\n" + half2 + "\n"),
			"not shown"},
		{"verify key line four values", verifier(" " + key + "\n key gw2 hmac_key " + half1 + " " + half2 + "\n"),
			"key"},
		{"verify hmac_key not base64", verifier(" hmac_key " + marker + "!!\n"),
			"not base64"},
		{"verify ed25519_public_key split", verifier(" ed25519_public_key /etc/caddy/" + half1 + "\n" + half2 + ".pem\n"),
			"not shown"},
		{"sql dsn split", gateway(outbox + forward + "directory sql postgres postgres://u:" + half1 + "\n" + half2 + "@db/x {\n query \"SELECT phone FROM m WHERE u = $1\"\n}\n"),
			"directory sql"},
		{"sql dsn two values", gateway(outbox + forward + "directory sql postgres postgres://u:" + half1 + " " + half2 + "@db/x {\n query \"SELECT phone FROM m WHERE u = $1\"\n}\n"),
			"directory sql"},
		{"sql postgres dsn bad", gateway(outbox + forward + "directory sql postgres \"postgres://u:" + marker + "@db:port/x\" {\n query \"SELECT phone FROM m WHERE u = $1\"\n}\n"),
			"dsn"},
		{"sql postgres key value dsn bad", gateway(outbox + forward + "directory sql postgres \"host=db password='" + marker + " port=x\" {\n query \"SELECT phone FROM m WHERE u = $1\"\n}\n"),
			"dsn"},
		{"sql mysql dsn bad", gateway(outbox + forward + "directory sql mysql \"u:" + marker + "@tcp(db:3306)/x?timeout=" + marker + "\" {\n query \"SELECT phone FROM m WHERE u = ?\"\n}\n"),
			"dsn"},
		{"sql mysql dsn no slash", gateway(outbox + forward + "directory sql mysql \"u:" + marker + "@tcp(db:3306)\" {\n query \"SELECT phone FROM m WHERE u = ?\"\n}\n"),
			"dsn"},
		{"ldap bind_password split", gateway(outbox + forward + "directory ldap ldap://ldap.example.com {\n bind_dn cn=gw\n bind_password " + half1 + "\n" + half2 + "\n base_dn dc=x\n filter (mail={account})\n}\n"),
			"not shown"},
		{"ldap bind_password split lowercase", gateway(outbox + forward + "directory ldap ldap://ldap.example.com {\n bind_dn cn=gw\n bind_password " + half1 + "\nfoo\n base_dn dc=x\n filter (mail={account})\n}\n"),
			"not shown"},
		{"ldap bind_password two values", gateway(outbox + forward + "directory ldap ldap://ldap.example.com {\n bind_dn cn=gw\n bind_password " + half1 + " " + half2 + "\n base_dn dc=x\n filter (mail={account})\n}\n"),
			"bind_password"},
		{"ldap bad url", gateway(outbox + forward + "directory ldap \"ldap://gw:" + marker + "@ldap example.com\" {\n bind_dn cn=gw\n bind_password " + marker + "\n base_dn dc=x\n filter (mail={account})\n}\n"),
			"url"},
		{"ldap bad url placeholder", gateway(outbox + forward + "directory ldap {env.SECRETS_TEST_LDAP_URL} {\n bind_dn cn=gw\n bind_password " + marker + "\n base_dn dc=x\n filter (mail={account})\n}\n"),
			"url"},
	}
	t.Setenv("SECRETS_TEST_LDAP_URL", "ldap://gw:"+marker+"@ldap example.com")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			if err := os.WriteFile(filepath.Join(tmp, "phones.json"), []byte(`{"alice@example.com":"+31612345678"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			caddyfile := strings.ReplaceAll(c.caddyfile, "$TMP", tmp)
			if !strings.Contains(caddyfile, marker) {
				t.Fatal("the case holds no secret")
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			for _, w := range warnings {
				if strings.Contains(w.String(), marker) {
					t.Errorf("adapter warning shows a secret: %s", w)
				}
			}
			var logs string
			if err == nil {
				logs, err = validate(t, out)
			}
			if err == nil {
				t.Fatal("the configuration loads")
			}
			if strings.Contains(err.Error(), marker) {
				t.Errorf("error shows a secret: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one mentioning %q", err, c.want)
			}
			for line := range strings.Lines(logs) {
				if strings.Contains(line, marker) {
					t.Errorf("log line shows a secret: %s", line)
				}
			}
		})
	}
}

// validate loads config as `caddy validate` does, the logs going to a
// file, and returns the logs and the error.
func validate(t *testing.T, config []byte) (string, error) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg["logging"] = map[string]any{"logs": map[string]any{"default": map[string]any{
		"level":  "DEBUG",
		"writer": map[string]any{"output": "file", "filename": logFile},
	}}}
	cfg["admin"] = map[string]any{"disabled": true}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c caddy.Config
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	verr := caddy.Validate(&c)
	logs, _ := os.ReadFile(logFile)
	return string(logs), verr
}
