package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
)

// ldapSite is a gateway whose phones come from srv, bound with the
// password from the environment as an operator would write it.
func ldapSite(t *testing.T, srv *ldaptest.Server, up *upstream) *site {
	t.Helper()
	t.Setenv("TEST_LDAP_PASSWORD", ldaptest.BindPassword)
	return &site{Upstream: up.addr, Directory: fmt.Sprintf(`directory ldap %s {
			bind_dn         %s
			bind_password   {env.TEST_LDAP_PASSWORD}
			base_dn         %s
			filter          "(&(objectClass=inetOrgPerson)(mail={account}))"
			lang_attribute  preferredLanguage
			timeout         1s
			pool_size       2
		}`, srv.URL, ldaptest.BindDN, ldaptest.BaseDN)}
}

func TestLDAPDirectoryWholeFlow(t *testing.T) {
	srv := ldaptest.Start(t)
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, ldapSite(t, srv, up))

	flow := c.startFlow("Alice@Example.com")
	msgs := c.messages(1)
	if len(msgs) != 1 || msgs[0].To != phoneNL {
		t.Fatalf("outbox = %+v, want one SMS to alice's mobile %s", msgs, phoneNL)
	}
	// alice's preferredLanguage is nl.
	if !strings.Contains(msgs[0].Body, "code") || !strings.Contains(msgs[0].Body, "Geldig") {
		t.Errorf("SMS not in Dutch: %q", msgs[0].Body)
	}
	c.reset(flow, 1, alice)
	got := up.got()
	if len(got) != 1 || got[0].account != alice || got[0].header.Get("X-Recovery-Account") != alice || got[0].body != password {
		t.Fatalf("upstream got %+v, want one signed reset for %s", got, alice)
	}
}

// TestLDAPDirectoryOutage kills the LDAP server: /start fails closed with
// 503 and Retry-After while the site's other routes keep answering, and
// recovery works again once the server is back, without a reload.
func TestLDAPDirectoryOutage(t *testing.T) {
	srv := ldaptest.Start(t)
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, ldapSite(t, srv, up))
	c.startFlow(alice) // the pool holds a bound connection now
	c.messages(1)

	srv.Stop()
	a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, alice))
	if a.Status != http.StatusServiceUnavailable || a.str("error") != "unavailable" || a.Header.Get("Retry-After") == "" {
		t.Fatalf("start with the directory down: %d %v %s", a.Status, a.Header, a.Raw)
	}
	if strings.Contains(a.Raw, ldaptest.BindPassword) || strings.Contains(a.Raw, "ldap") {
		t.Errorf("the 503 tells too much: %s", a.Raw)
	}
	for path, want := range map[string]string{"/health": "ok", "/inbox": "webmail"} {
		res, err := c.http.Get(gateway + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s with the directory down: %d %q", path, res.StatusCode, body)
		}
	}

	srv.Restart()
	c.startFlow("bob@example.com")
	if msgs := c.messages(2); len(msgs) != 2 || msgs[1].To != "+4915123456789" {
		t.Fatalf("outbox after the directory came back = %+v", msgs)
	}
}

// TestLDAPDirectoryInjection sends filter syntax as the account, end to
// end. Each gets the answer of an unknown account (202 with a decoy flow)
// and no SMS goes to anyone: the next message in the outbox is the code of
// a real start that follows them.
func TestLDAPDirectoryInjection(t *testing.T) {
	srv := ldaptest.Start(t)
	up := startUpstream(t, "127.0.0.1:0")
	c := start(t, ldapSite(t, srv, up))
	for _, account := range []string{"*", "*)(uid=*", "admin)(|(mail=*", `alice@example.com)(mail=*`, `\2a`} {
		a := c.post("/recovery/start", fmt.Sprintf(`{"account":%q}`, account))
		if a.Status != http.StatusAccepted || a.str("flow") == "" {
			t.Fatalf("start %q: %d %s", account, a.Status, a.Raw)
		}
	}
	c.startFlow("bob@example.com")
	msgs := c.messages(1)
	if len(msgs) != 1 || msgs[0].To != "+4915123456789" {
		t.Fatalf("outbox = %+v, want only bob's code", msgs)
	}
}
