package failover

import (
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
)

func TestFailoverUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	guesttest.Unmarshal(t, []guesttest.Case{
		{
			Name: "two senders, first choice first", Mod: &Failover{},
			Input: "failover {\n\tmessagebird {\n\t\taccess_key {env.K}\n\t\toriginator Mail\n\t}\n\toutbox /var/lib/caddy/outbox.jsonl\n}",
			Want:  `{"senders":[{"access_key":"{env.K}","originator":"Mail","provider":"messagebird"},{"path":"/var/lib/caddy/outbox.jsonl","provider":"outbox"}]}`,
		},
		{
			Name: "the same provider twice", Mod: &Failover{},
			Input: "failover {\n\tmessagebird {\n\t\taccess_key {env.K1}\n\t\toriginator Mail\n\t}\n\tmessagebird {\n\t\taccess_key {env.K2}\n\t\toriginator Mail\n\t}\n}",
			Want:  `{"senders":[{"access_key":"{env.K1}","originator":"Mail","provider":"messagebird"},{"access_key":"{env.K2}","originator":"Mail","provider":"messagebird"}]}`,
		},
		{
			Name: "an argument", Mod: &Failover{}, Input: "failover messagebird {\n\toutbox a\n\toutbox b\n}",
			Want: "error: sms failover: takes no argument, only a block of senders",
		},
		{
			Name: "one sender", Mod: &Failover{}, Input: "failover {\n\toutbox a\n}",
			Want: "error: sms failover: at least two senders",
		},
		{
			Name: "no block", Mod: &Failover{}, Input: "failover",
			Want: "error: sms failover: at least two senders",
		},
		{
			Name: "an unknown sender", Mod: &Failover{}, Input: "failover {\n\toutbox a\n\tpigeon {\n\t}\n}",
			Want: "error: sms failover: unknown sender 'pigeon'",
		},
		{
			Name: "a failover inside", Mod: &Failover{}, Input: "failover {\n\toutbox a\n\tfailover {\n\t\toutbox b\n\t\toutbox c\n\t}\n}",
			Want: "error: sms failover: a failover cannot hold another",
		},
		{
			Name: "a sender's own error", Mod: &Failover{}, Input: "failover {\n\toutbox a\n\tmessagebird {\n\t\tapi_key x\n\t}\n}",
			Want: "error: sms messagebird: unrecognized subdirective 'api_key'",
		},
	})
}
