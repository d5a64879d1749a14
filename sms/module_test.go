package sms

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func loadSender(t *testing.T, name, raw string) (DelivererFactory, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(Namespace+"."+name, json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return mod.(DelivererFactory), nil
}

func TestSenderModuleLoadErrors(t *testing.T) {
	t.Setenv("SMS_TEST_EMPTY", "")
	cases := []struct{ name, module, raw, want string }{
		{"messagebird without key", "messagebird", `{"originator": "Mail"}`, "sms messagebird: access_key is required"},
		{"messagebird key from an empty variable", "messagebird", `{"access_key": "{env.SMS_TEST_EMPTY}", "originator": "Mail"}`,
			"sms messagebird: access_key: placeholder {env.SMS_TEST_EMPTY} is empty"},
		{"messagebird bad originator", "messagebird", `{"access_key": "k", "originator": "A very long sender name"}`, "sms messagebird: originator"},
		{"outbox path from an unset variable", "outbox", `{"path": "{env.SMS_TEST_UNSET}"}`, "sms outbox: placeholder {env.SMS_TEST_UNSET} is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadSender(t, c.module, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestOutboxModule shows that the module only holds its settings until the
// host asks for a deliverer, and that the deliverer writes the file.
func TestOutboxModule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	f, err := loadSender(t, "outbox", `{"path": "`+path+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the outbox exists before NewDeliverer: %v", err)
	}
	d, release, err := f.NewDeliverer()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := d.Deliver(context.Background(), recovery.Message{Kind: "code", To: "+31612345678", Body: "code 123456"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"to":"+31612345678"`) {
		t.Fatalf("outbox = %q, %v", b, err)
	}
}

func TestMessageBirdModule(t *testing.T) {
	t.Setenv("SMS_TEST_KEY", "live_abc")
	f, err := loadSender(t, "messagebird", `{"access_key": "{env.SMS_TEST_KEY}", "originator": "Mail"}`)
	if err != nil {
		t.Fatal(err)
	}
	if m := f.(*MessageBirdModule); m.AccessKey != "live_abc" {
		t.Fatalf("access_key = %q, want the variable's value", m.AccessKey)
	}
	d, release, err := f.NewDeliverer()
	if err != nil || d == nil || release == nil {
		t.Fatalf("NewDeliverer = %v, %v", d, err)
	}
	release()
}

func TestSenderUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mod   cf.Unmarshaler
		input string
		want  string
	}{
		{"outbox", &OutboxModule{}, "outbox /tmp/o.jsonl", `{"path":"/tmp/o.jsonl"}`},
		{"outbox without path", &OutboxModule{}, "outbox", "error: sms outbox: a path is required"},
		{"messagebird", &MessageBirdModule{}, "messagebird {\naccess_key {env.K}\noriginator Mail\ntimeout 5s\n}",
			`{"access_key":"{env.K}","originator":"Mail","timeout":5000000000}`},
		{"messagebird unknown", &MessageBirdModule{}, "messagebird {\napi_key x\n}", "error: sms messagebird: unrecognized subdirective 'api_key'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.mod.UnmarshalCaddyfile(cf.NewTestDispenser(c.input))
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(c.mod); string(got) != c.want {
				t.Fatalf("JSON = %s, want %s", got, c.want)
			}
		})
	}
}
