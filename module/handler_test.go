package module

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	filedirectory "github.com/caddy-sms-recovery/caddy-sms-recovery/directory/file"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/examplekey"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/messagebird"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/outbox"
	redisstore "github.com/caddy-sms-recovery/caddy-sms-recovery/storage/redis"
)

// validHandler returns a configuration that loads.
func validHandler() *Handler {
	return &Handler{
		PublicURL:    "https://mail.example.com",
		DirectoryRaw: fileDirectory("phones.json"),
		Forward:      &Forward{KeyID: "gw1", HMACKey: strings.Repeat("AAAA", 22)},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Handler)
		want   string // part of the error; "" for none
	}{
		{"defaults", func(*Handler) {}, ""},
		{"short code", func(h *Handler) { h.CodeLength = 4 }, "code_length: 4 is outside 6..10"},
		{"long code", func(h *Handler) { h.CodeLength = 11 }, "code_length: 11"},
		{"negative ttl", func(h *Handler) { h.CodeTTL = caddy.Duration(-1) }, "code_ttl:"},
		{"day-long code", func(h *Handler) { h.CodeTTL = caddy.Duration(24 * 3600e9) }, "code_ttl:"},
		{"no attempts", func(h *Handler) { h.MaxAttempts = -1 }, "max_attempts:"},
		{"prefix without slash", func(h *Handler) { h.PathPrefix = "recovery" }, "path_prefix:"},
		{"prefix with trailing slash", func(h *Handler) { h.PathPrefix = "/recovery/" }, "path_prefix:"},
		{"no directory", func(h *Handler) { h.DirectoryRaw = nil }, "directory: required"},
		{"negative queue", func(h *Handler) { h.SMSQueue = -1 }, "sms_queue: must be positive"},
		{"unknown limit", func(h *Handler) { h.Limits = map[string]Limit{"start_planet": {Events: 1, Window: 1}} }, `limit: unknown scope "start_planet"`},
		{"short secret", func(h *Handler) { h.Secrets = []string{"c2hvcnQ="} }, "secret: value 1"},
		{"no forward", func(h *Handler) { h.Forward = nil }, "forward: required"},
		{"bird secret that is not one", func(h *Handler) { h.DeliveryReports = &DeliveryReports{BirdSecrets: []string{"whsec_c2VjcmV0!!"}} },
			"delivery_reports: bird_secret: value 1 is not whsec_ followed by base64"},
		{"two forward keys", func(h *Handler) { h.Forward.Ed25519Key = "key.pem" }, "forward: give exactly one"},
		{"relative forward path", func(h *Handler) { h.Forward.Path = "api" }, "forward: path"},
		{"no public_url", func(h *Handler) { h.PublicURL = "" }, "public_url: required: the Caddyfile's site address names no single host, or the config is JSON"},
		{"public_url over http", func(h *Handler) { h.PublicURL = "http://localhost:8080" }, ""},
		{"public_url with a path", func(h *Handler) { h.PublicURL = "https://example.com/mail/" }, ""},
		{"public_url without a scheme", func(h *Handler) { h.PublicURL = "mail.example.com" }, `public_url: "mail.example.com" must be an http or https URL`},
		{"public_url of another scheme", func(h *Handler) { h.PublicURL = "javascript://mail.example.com" }, "must be an http or https URL"},
		{"public_url without a host", func(h *Handler) { h.PublicURL = "https:///recovery" }, "must name a host"},
		{"public_url with a wildcard", func(h *Handler) { h.PublicURL = "https://*.example.com" }, "must name a host"},
		{"public_url with a user", func(h *Handler) { h.PublicURL = "https://mail.example.com@evil.example" }, "must not hold a user"},
		{"public_url with a query", func(h *Handler) { h.PublicURL = "https://mail.example.com/?a=b" }, "must not hold a query or a fragment"},
		{"public_url with an empty query", func(h *Handler) { h.PublicURL = "https://mail.example.com?" }, "must not hold a query or a fragment"},
		{"public_url with a fragment", func(h *Handler) { h.PublicURL = "https://mail.example.com#x" }, "must not hold a query or a fragment"},
		{"public_url with a bad port", func(h *Handler) { h.PublicURL = "https://mail.example.com:evil" }, "public_url:"},
		{"forward fields", func(h *Handler) { h.Forward.Fields = []string{"password", "lang"} }, ""},
		{"empty forward field", func(h *Handler) { h.Forward.Fields = []string{"password", ""} }, "forward: fields: name 2 is empty"},
		{"repeated forward field", func(h *Handler) { h.Forward.Fields = []string{"password", "password"} }, `forward: fields: "password" is named twice`},
		{"log_accounts hashed", func(h *Handler) { h.LogAccounts = "hashed" }, ""},
		{"log_accounts clear", func(h *Handler) { h.LogAccounts = "clear" }, ""},
		{"the example's forward key on a public site", func(h *Handler) { h.Forward.HMACKey = examplekey.HMACKey },
			"forward: hmac_key is the example's, published with this module"},
		{"the example's forward key on localhost", func(h *Handler) { h.Forward.HMACKey, h.PublicURL = examplekey.HMACKey, "http://localhost:8080" }, ""},
		{"the example's forward key on a loopback address", func(h *Handler) { h.Forward.HMACKey, h.PublicURL = examplekey.HMACKey, "http://127.0.0.1:8080" }, ""},
		{"language without texts", func(h *Handler) { h.Language = "es" }, `language: no built-in texts for "es" (built in: de, en, fr, nl)`},
		{"language with a region", func(h *Handler) { h.Language = "nl-BE" }, ""},
		{"log_accounts of another word", func(h *Handler) { h.LogAccounts = "plain" }, `log_accounts: "plain" is neither hashed nor clear`},
		{"reset token as a forward field", func(h *Handler) { h.Forward.Fields = []string{"reset_token"} }, `forward: fields: "reset_token" never reaches the upstream`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := validHandler()
			c.mutate(h)
			h.fillDefaults()
			err := h.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDefaultsAreSafe(t *testing.T) {
	t.Parallel()
	h := validHandler()
	h.fillDefaults()
	if h.CodeLength != 6 || h.CodeTTL != caddy.Duration(defaultCodeTTL) || h.MaxAttempts != 5 ||
		h.ResendInterval != caddy.Duration(defaultResendInterval) || h.TokenTTL != caddy.Duration(defaultTokenTTL) {
		t.Errorf("defaults: %+v", h)
	}
	if !*h.NotifyOnReset || h.PathPrefix != "/recovery" || h.SMSQueue != 1000 || h.LogAccounts != "hashed" || h.HandleErrors {
		t.Errorf("defaults: %+v", h)
	}
	l := h.limits()
	if l.StartIP.Events != 10 || l.StartAccount.Events != 3 || l.StartPhone.Events != 3 ||
		l.VerifyIP.Events != 50 || l.SMSGlobal.Events != 1000 || l.Lockout.Failures != 5 || l.IPBlock.Failures != 20 {
		t.Errorf("limits are not on by default: %+v", l)
	}
}

// TestDefaultModules provisions a gateway that names no sender and no
// storage: it gets the outbox sms-outbox.jsonl and a memory store of
// 100000 entries, loaded as modules like any other.
func TestDefaultModules(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("phones.json", []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := validHandler()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	wantStore := memoryKey(100_000)
	if h.store.key != wantStore {
		t.Errorf("store %q, want the memory store of 100000 entries %q", h.store.key, wantStore)
	}
	wantQueue, _ := poolKey(&outbox.Outbox{Path: "sms-outbox.jsonl"}, 1000, h.reports.ID())
	if n, ok := queues.References(wantQueue); !ok || n < 1 {
		t.Errorf("no queue for the outbox sms-outbox.jsonl with 1000 places (%d, %v)", n, ok)
	}
	if _, ok := h.dir.(*filedirectory.File); !ok {
		t.Errorf("directory is a %T", h.dir)
	}
}

// TestModuleLoadErrors shows that a guest module that cannot load stops
// the gateway's load with a message naming the directive and the module.
func TestModuleLoadErrors(t *testing.T) {
	t.Setenv("SMSREC_TEST_EMPTY", "")
	cases := []struct {
		name   string
		mutate func(*Handler)
		want   string
	}{
		{"unknown directory", func(h *Handler) { h.DirectoryRaw = json.RawMessage(`{"source": "carrierpigeon"}`) },
			"directory: loading module 'carrierpigeon': unknown module: http.handlers.sms_recovery.directories.carrierpigeon"},
		{"directory without source", func(h *Handler) { h.DirectoryRaw = json.RawMessage(`{"path": "phones.json"}`) },
			"directory: "},
		{"unknown sender", func(h *Handler) { h.SenderRaw = json.RawMessage(`{"provider": "pigeon"}`) },
			"http.handlers.sms_recovery.senders.pigeon"},
		{"unknown storage", func(h *Handler) { h.StorageRaw = json.RawMessage(`{"backend": "etcd"}`) },
			"http.handlers.sms_recovery.storage.etcd"},
		{"a sender where the directory goes", func(h *Handler) {
			h.SenderRaw = json.RawMessage(`{"provider": "outbox", "path": "x", "url": "y"}`)
		}, `unknown field "url"`},
		{"messagebird without key", func(h *Handler) {
			h.SenderRaw = messageBirdSender(&messagebird.MessageBird{Originator: "Mail"})
		}, "sms messagebird: access_key is required"},
		{"messagebird key from an empty variable", func(h *Handler) {
			h.SenderRaw = messageBirdSender(&messagebird.MessageBird{AccessKey: "{env.SMSREC_TEST_EMPTY}", Originator: "Mail"})
		}, "sms messagebird: access_key: placeholder {env.SMSREC_TEST_EMPTY} is empty"},
		{"redis without secret", func(h *Handler) {
			h.StorageRaw = guest(&redisstore.Store{URL: "redis://127.0.0.1:1", DialTimeout: caddy.Duration(time.Millisecond)}, "backend")
		}, "secret: required with redis storage"},
		{"small memory store", func(h *Handler) { h.StorageRaw = memoryStorage(10) }, "storage memory: max_entries 10 is below 100"},
		{"secret from an empty variable", func(h *Handler) { h.Secrets = []string{"{env.SMSREC_TEST_EMPTY}"} },
			"secret: value 1: placeholder {env.SMSREC_TEST_EMPTY} is empty"},
		{"hmac_key from an unset variable", func(h *Handler) { h.Forward.HMACKey = "{env.SMSREC_TEST_UNSET}" },
			"forward: hmac_key: placeholder {env.SMSREC_TEST_UNSET} is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			phones := filepath.Join(dir, "phones.json")
			if err := os.WriteFile(phones, []byte(`{}`), 0o600); err != nil {
				t.Fatal(err)
			}
			h := validHandler()
			h.DirectoryRaw = fileDirectory(phones)
			h.SenderRaw = outboxSender(filepath.Join(dir, "outbox.jsonl"))
			c.mutate(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Provision = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestPlaceholdersInSecrets(t *testing.T) {
	t.Setenv("SMSREC_TEST_SECRET", strings.Repeat("QUFB", 11))
	t.Setenv("SMSREC_TEST_HMAC", strings.Repeat("AAAA", 22))
	h := validHandler()
	h.Secrets = []string{"{env.SMSREC_TEST_SECRET}"}
	h.Forward.HMACKey = "{env.SMSREC_TEST_HMAC}"
	h.fillDefaults()
	if err := h.expandPlaceholders(); err != nil {
		t.Fatal(err)
	}
	if h.Secrets[0] != strings.Repeat("QUFB", 11) || h.Forward.HMACKey != strings.Repeat("AAAA", 22) {
		t.Fatalf("placeholders not expanded: %q %q", h.Secrets[0], h.Forward.HMACKey)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}
