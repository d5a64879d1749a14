package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// failoverSMS is an sms failover block over two MessageBird senders.
func failoverSMS(primary, secondary string) string {
	return fmt.Sprintf("sms failover {\n\t\t\tmessagebird {\n\t\t\t\taccess_key live_primary_key\n\t\t\t\toriginator ExampleMail\n\t\t\t\tendpoint %s\n\t\t\t}\n"+
		"\t\t\tmessagebird {\n\t\t\t\taccess_key live_secondary_key\n\t\t\t\toriginator ExampleMail\n\t\t\t\tendpoint %s\n\t\t\t}\n\t\t}", primary, secondary)
}

// TestFailoverDeliversThroughTheSecondary: with the first provider of an
// sms failover down, /start's code goes out once, through the second, and
// verifies; the metrics show the fallback at work.
func TestFailoverDeliversThroughTheSecondary(t *testing.T) {
	primary := newMessageBird(t, func(_ int, w http.ResponseWriter, _ mbMessage) {
		mbError(w, http.StatusServiceUnavailable, 99, "internal error")
	})
	secondary := newMessageBird(t, func(_ int, w http.ResponseWriter, m mbMessage) { mbCreated(w, m) })
	up := startUpstream(t, "127.0.0.1:0")
	const siteName = "Failover Mail"
	s := &site{Upstream: up.addr, SiteName: siteName, SMS: failoverSMS(primary.URL, secondary.URL)}
	c := start(t, s)
	series := func(position, result string) string {
		return fmt.Sprintf(`caddy_sms_recovery_sms_tries_total{position=%q,provider="messagebird",result=%q,site=%q}`, position, result, siteName)
	}
	before := metrics(t)

	flow := c.startFlow(alice)
	msgs := secondary.waitRequests(1, 20*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("the secondary got %d requests, want the code", len(msgs))
	}
	settleMessageBird(t, s) // drains the queue: the counts below are final
	if p, s := len(primary.requests()), len(secondary.requests()); p != 1 || s != 1 {
		t.Fatalf("requests: primary %d, secondary %d; want one each", p, s)
	}
	if got := secondary.auth[0]; got != "AccessKey live_secondary_key" {
		t.Errorf("the secondary was asked with %q, want its own key", got)
	}
	code := mbCode.FindStringSubmatch(msgs[0].Body)
	if code == nil {
		t.Fatalf("no code line in %q", msgs[0].Body)
	}
	if a := c.post("/recovery/verify", fmt.Sprintf(`{"flow":%q,"code":%q}`, flow, code[1])); a.Status != http.StatusOK {
		t.Fatalf("verify: %d %s", a.Status, a.Raw)
	}

	after := metrics(t)
	for _, w := range []struct {
		series string
		rise   float64
	}{{series("1", "failed"), 1}, {series("2", "sent"), 1}, {series("1", "sent"), 0}} {
		if d := metricValue(t, after, w.series) - metricValue(t, before, w.series); d != w.rise {
			t.Errorf("%s rose by %v, want %v", w.series, d, w.rise)
		}
	}
}
