package report

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func keyring(t *testing.T, fill ...byte) *recovery.Keyring {
	t.Helper()
	var secrets [][]byte
	for _, b := range fill {
		secrets = append(secrets, bytes.Repeat([]byte{b}, 32))
	}
	k, err := recovery.NewKeyring(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// kannelCalls returns the query smsbox sends when it calls the dlr-url
// raw with DLR type dlr: it replaces %d and fetches the URL as it is.
func kannelCalls(t *testing.T, raw string, dlr string) url.Values {
	t.Helper()
	u, err := url.Parse(strings.Replace(raw, "%d", dlr, 1))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

var message = recovery.Message{Kind: "code", To: "+31612345678", Body: "code 123456", Reference: "f-1a2b3c"}

func TestKannelURLRoundTrip(t *testing.T) {
	u := NewURLs("https://mail.example.com/recovery/sms-report/", keyring(t, 1))
	raw := u.KannelURL(message)
	if !strings.HasPrefix(raw, "https://mail.example.com/recovery/sms-report/kannel?") || !strings.HasSuffix(raw, "&status=%d") {
		t.Fatalf("KannelURL = %q", raw)
	}
	if strings.Contains(raw, "612345678") || strings.Contains(raw, "123456") {
		t.Fatalf("the URL shows the number or the text: %q", raw)
	}
	if strings.Count(raw, "%") != 1 {
		t.Fatalf("smsbox reads every %% of a dlr-url as one of its escapes, and %q has more than %%d", raw)
	}
	for dlr, want := range map[string]Status{"1": Delivered, "2": Failed, "4": Pending, "8": Accepted, "16": Failed} {
		r, err := u.Kannel(kannelCalls(t, raw, dlr))
		if err != nil {
			t.Fatalf("DLR %s: %v", dlr, err)
		}
		if r != (Report{Provider: Kannel, Country: "NL", Status: want, Reference: "f-1a2b3c"}) {
			t.Errorf("DLR %s: %+v", dlr, r)
		}
	}
}

func TestKannelRefusesForgedReports(t *testing.T) {
	u := NewURLs("https://mail.example.com/recovery/sms-report", keyring(t, 1))
	good := kannelCalls(t, u.KannelURL(message), "1")
	other := kannelCalls(t, NewURLs("https://mail.example.com/recovery/sms-report", keyring(t, 2)).KannelURL(message), "1")
	cases := map[string]func(q url.Values){
		"no tag":               func(q url.Values) { q.Del("t") },
		"another country":      func(q url.Values) { q.Set("c", "US") },
		"another reference":    func(q url.Values) { q.Set("r", "f-other") },
		"tag of another key":   func(q url.Values) { q.Set("t", other.Get("t")) },
		"tag cut short":        func(q url.Values) { q.Set("t", q.Get("t")[:10]) },
		"country and ref gone": func(q url.Values) { q.Del("c"); q.Del("r") },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = append([]string(nil), v...)
			}
			change(q)
			if _, err := u.Kannel(q); !errors.Is(err, ErrForged) {
				t.Fatalf("Kannel = %v, want ErrForged", err)
			}
		})
	}
}

func TestKannelRefusesUnknownStatus(t *testing.T) {
	u := NewURLs("https://mail.example.com/recovery/sms-report", keyring(t, 1))
	for _, dlr := range []string{"", "0", "3", "32", "x"} {
		if _, err := u.Kannel(kannelCalls(t, u.KannelURL(message), dlr)); !errors.Is(err, ErrMalformed) {
			t.Errorf("status %q: %v, want ErrMalformed", dlr, err)
		}
	}
}

func TestKannelURLSurvivesRotation(t *testing.T) {
	raw := NewURLs("https://m.example/r/sms-report", keyring(t, 1)).KannelURL(message)
	rotated := NewURLs("https://m.example/r/sms-report", keyring(t, 2, 1))
	if _, err := rotated.Kannel(kannelCalls(t, raw, "1")); err != nil {
		t.Fatalf("a report signed before a rotation: %v", err)
	}
	dropped := NewURLs("https://m.example/r/sms-report", keyring(t, 2))
	if _, err := dropped.Kannel(kannelCalls(t, raw, "1")); !errors.Is(err, ErrForged) {
		t.Fatalf("a report signed with a retired secret: %v, want ErrForged", err)
	}
}

func TestURLsID(t *testing.T) {
	a := NewURLs("https://a.example/r/sms-report", keyring(t, 1))
	if a.ID() != NewURLs("https://a.example/r/sms-report", keyring(t, 1)).ID() {
		t.Error("the same base and key give two IDs")
	}
	if a.ID() == NewURLs("https://b.example/r/sms-report", keyring(t, 1)).ID() ||
		a.ID() == NewURLs("https://a.example/r/sms-report", keyring(t, 2)).ID() {
		t.Error("another base or key gives the same ID")
	}
}

func TestCountry(t *testing.T) {
	for phone, want := range map[string]string{
		"+31612345678": "NL", "+4915123456789": "DE", "+12015550123": "US",
		"": "", "31612345678": "", "+999123": "", "not a number": "",
	} {
		if got := Country(phone); got != want {
			t.Errorf("Country(%q) = %q, want %q", phone, got, want)
		}
	}
}

// birdSecret is made up: whsec_ and the base64 of 32 bytes.
var birdSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// birdDelivery signs body as Bird's webhooks are signed (Standard
// Webhooks), one v1 entry for each of secrets.
func birdDelivery(t *testing.T, body string, at time.Time, secrets ...string) http.Header {
	t.Helper()
	h := http.Header{}
	h.Set("Webhook-Id", "msg_2x7Yb0")
	h.Set("Webhook-Timestamp", strconv.FormatInt(at.Unix(), 10))
	var sigs []string
	for _, s := range secrets {
		key, err := BirdSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(h.Get("Webhook-Id") + "." + h.Get("Webhook-Timestamp") + "." + body))
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	h.Set("Webhook-Signature", strings.Join(sigs, " "))
	return h
}

// birdEventBody is an SMS event as Bird's SDK describes it.
func birdEventBody(typ string) string {
	return `{"type":"` + typ + `","timestamp":"2026-12-07T10:00:00Z","data":{"sms_id":"4f0e9a6c-1d2b-4c3a-9e8f-7a6b5c4d3e2f",` +
		`"to":"+31612345678","from":"ExampleMail","mcc_mnc":"20404","carrier":null,"metadata":null,"tags":null,` +
		`"workspace_id":"9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a"}}`
}

func birdKeys(t *testing.T, secrets ...string) [][]byte {
	t.Helper()
	var keys [][]byte
	for _, s := range secrets {
		k, err := BirdSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func TestReadBird(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 5, 0, time.UTC)
	keys := birdKeys(t, birdSecret)
	for typ, want := range map[string]Status{
		"sms.delivered": Delivered, "sms.failed": Failed, "sms.undelivered": Failed, "sms.rejected": Failed,
		"sms.expired": Failed, "sms.accepted": Accepted, "sms.sent": Accepted, "sms.tfn_verification.approved": "",
	} {
		body := birdEventBody(typ)
		r, err := ReadBird(keys, birdDelivery(t, body, now, birdSecret), []byte(body), now)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		wantCountry := "NL"
		if want == "" {
			wantCountry = ""
		}
		if r != (Report{Provider: Bird, Country: wantCountry, Status: want}) {
			t.Errorf("%s: %+v", typ, r)
		}
	}
}

func TestReadBirdRefusesForgedDeliveries(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 5, 0, time.UTC)
	body := birdEventBody("sms.delivered")
	other := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	cases := []struct {
		name string
		h    http.Header
		body string
	}{
		{"unsigned", http.Header{}, body},
		{"another secret", birdDelivery(t, body, now, other), body},
		{"body changed", birdDelivery(t, body, now, birdSecret), strings.Replace(body, "delivered", "failed", 1)},
		{"too old", birdDelivery(t, body, now.Add(-BirdTolerance-time.Second), birdSecret), body},
		{"from the future", birdDelivery(t, body, now.Add(BirdTolerance+time.Second), birdSecret), body},
		{"v2 entry", func() http.Header {
			h := birdDelivery(t, body, now, birdSecret)
			h.Set("Webhook-Signature", strings.Replace(h.Get("Webhook-Signature"), "v1,", "v2,", 1))
			return h
		}(), body},
		{"id changed", func() http.Header {
			h := birdDelivery(t, body, now, birdSecret)
			h.Set("Webhook-Id", "msg_other")
			return h
		}(), body},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ReadBird(birdKeys(t, birdSecret), c.h, []byte(c.body), now); !errors.Is(err, ErrForged) {
				t.Fatalf("ReadBird = %v, want ErrForged", err)
			}
		})
	}
}

func TestReadBirdDuringRotation(t *testing.T) {
	now := time.Now()
	body := birdEventBody("sms.delivered")
	next := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	// Bird signs with both secrets for a day after a rotation; the
	// gateway may know either.
	h := birdDelivery(t, body, now, next, birdSecret)
	for _, known := range [][]string{{birdSecret}, {next}, {next, birdSecret}} {
		if _, err := ReadBird(birdKeys(t, known...), h, []byte(body), now); err != nil {
			t.Errorf("knowing %d of the secrets: %v", len(known), err)
		}
	}
}

func TestReadBirdMalformed(t *testing.T) {
	now := time.Now()
	for _, body := range []string{`not json`, `{}`, `{"type":""}`} {
		if _, err := ReadBird(birdKeys(t, birdSecret), birdDelivery(t, body, now, birdSecret), []byte(body), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", body, err)
		}
	}
}

func TestBirdSecret(t *testing.T) {
	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec"} {
		if _, err := BirdSecret(bad); err == nil {
			t.Errorf("BirdSecret(%q) accepted", bad)
		}
	}
}
