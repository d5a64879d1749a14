package messagebird

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/guesttest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

const (
	testAccessKey = "test_gshuPaZoeEG6ovbc8M79w0QyM"
	testPhone     = "+31612345678"
	testCode      = "493817"
)

var testMessage = recovery.Message{
	Kind:      "code",
	To:        testPhone,
	Body:      "Example Mail password reset code: " + testCode + "\n\n@mail.example.com #" + testCode,
	Reference: "flow-7f3a",
	Validity:  5 * time.Minute,
}

// received is the part of a POST /messages request body the tests check,
// in the JSON shape of the MessageBird REST API.
type received struct {
	Originator string   `json:"originator"`
	Body       string   `json:"body"`
	Recipients []string `json:"recipients"`
	DataCoding string   `json:"datacoding"`
	Validity   *int     `json:"validity"`
	Reference  string   `json:"reference"`
	Type       string   `json:"type"`
}

type fakeRequest struct {
	Method, Path, Auth, ContentType string
	Body                            received
	Raw                             map[string]json.RawMessage
}

// fakeMessageBird is a stand-in for the MessageBird REST API: it records
// every request and answers the n-th one (from 1) with respond.
type fakeMessageBird struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request, m received)

	mu   sync.Mutex
	reqs []fakeRequest
}

func newFakeMessageBird(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request, m received)) *fakeMessageBird {
	t.Helper()
	f := &fakeMessageBird{respond: respond}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMessageBird) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "AccessKey "+testAccessKey {
		apiError(http.StatusUnauthorized, 2, "Request not allowed (incorrect access_key)", "access_key")(0, w, r, received{})
		return
	}
	req := fakeRequest{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
	if err := json.Unmarshal(raw, &req.Body); err != nil {
		http.Error(w, `{"errors":[{"code":21,"description":"Bad request","parameter":null}]}`, http.StatusBadRequest)
		return
	}
	_ = json.Unmarshal(raw, &req.Raw)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	f.mu.Unlock()
	f.respond(n, w, r, req.Body)
}

func (f *fakeMessageBird) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

// created answers like MessageBird for an accepted message: 201 with the
// message object, recipients as JSON numbers.
func created(w http.ResponseWriter, r *http.Request, m received) {
	const id = "6fe65f90454aa61536e6a88b88972670"
	now := time.Now().UTC().Format(time.RFC3339)
	items := make([]map[string]any, 0, len(m.Recipients))
	for _, rcpt := range m.Recipients {
		n, _ := strconv.ParseInt(rcpt, 10, 64)
		items = append(items, map[string]any{
			"recipient":        n,
			"status":           "sent",
			"statusDatetime":   now,
			"messagePartCount": 1,
		})
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id":                id,
		"href":              "http://" + r.Host + "/messages/" + id,
		"direction":         "mt",
		"type":              "sms",
		"originator":        m.Originator,
		"body":              m.Body,
		"reference":         m.Reference,
		"validity":          m.Validity,
		"gateway":           10,
		"typeDetails":       map[string]any{},
		"datacoding":        m.DataCoding,
		"mclass":            1,
		"scheduledDatetime": nil,
		"createdDatetime":   now,
		"recipients": map[string]any{
			"totalCount":               len(items),
			"totalSentCount":           len(items),
			"totalDeliveredCount":      0,
			"totalDeliveryFailedCount": 0,
			"items":                    items,
		},
	})
}

func apiError(status, code int, description, parameter string) func(int, http.ResponseWriter, *http.Request, received) {
	return func(_ int, w http.ResponseWriter, _ *http.Request, _ received) {
		writeJSON(w, status, map[string]any{"errors": []map[string]any{
			{"code": code, "description": description, "parameter": parameter},
		}})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newTestMessageBird(t *testing.T, endpoint string, timeout time.Duration) *MessageBird {
	t.Helper()
	mb, err := guesttest.Load(t, &MessageBird{
		AccessKey:  testAccessKey,
		Originator: "ExampleMail",
		Endpoint:   endpoint,
		Timeout:    caddy.Duration(timeout),
	})
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// assertNoSecrets fails if err's text holds the code, the phone number,
// the access key or one of keys.
func assertNoSecrets(t *testing.T, err error, keys ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range append([]string{testCode, strings.TrimPrefix(testPhone, "+"), testAccessKey}, keys...) {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds a secret or the phone number", err)
		}
	}
}

func TestMessageBirdRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		validity     time.Duration
		endpoint     string // appended to the fake's URL
		wantPath     string
		wantValidity *int
	}{
		{"five minutes", 5 * time.Minute, "", "/messages", new(300)},
		{"rounded up to whole seconds", 90*time.Second + time.Millisecond, "", "/messages", new(91)},
		{"no validity", 0, "", "/messages", nil},
		{"endpoint with a path", time.Minute, "/mb/v1/", "/mb/v1/messages", new(60)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeMessageBird(t, func(_ int, w http.ResponseWriter, r *http.Request, m received) { created(w, r, m) })
			mb := newTestMessageBird(t, fake.URL+tt.endpoint, 5*time.Second)
			m := testMessage
			m.Validity = tt.validity
			if err := mb.Deliver(context.Background(), m); err != nil {
				t.Fatalf("Deliver: %v", err)
			}

			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("fake got %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Method != http.MethodPost || got.Path != tt.wantPath {
				t.Errorf("request = %s %s, want POST %s", got.Method, got.Path, tt.wantPath)
			}
			if want := "AccessKey " + testAccessKey; got.Auth != want {
				t.Errorf("Authorization = %q, want %q", got.Auth, want)
			}
			if got.ContentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got.ContentType)
			}
			b := got.Body
			if b.Originator != "ExampleMail" || b.Body != m.Body || b.DataCoding != "plain" || b.Reference != m.Reference {
				t.Errorf("body = %+v, want originator ExampleMail, the exact text, datacoding plain, reference %q", b, m.Reference)
			}
			if len(b.Recipients) != 1 || b.Recipients[0] != "31612345678" {
				t.Errorf("recipients = %q, want [31612345678]", b.Recipients)
			}
			switch {
			case tt.wantValidity == nil && b.Validity != nil:
				t.Errorf("validity = %d, want it left out", *b.Validity)
			case tt.wantValidity != nil && (b.Validity == nil || *b.Validity != *tt.wantValidity):
				t.Errorf("validity = %v, want %d", b.Validity, *tt.wantValidity)
			}
			if tt.wantValidity == nil {
				if _, ok := got.Raw["validity"]; ok {
					t.Errorf("validity sent as %s, want it left out", got.Raw["validity"])
				}
			}
		})
	}
}

func TestMessageBirdErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		respond        func(int, http.ResponseWriter, *http.Request, received)
		platform       bool // the endpoint is the platform API's fake
		unreachable    bool
		wantPermanent  bool
		wantStatus     int
		wantCode       int
		wantParameter  string
		wantRetryAfter time.Duration
		wantText       []string // substrings of the error's text
		wantCause      error
	}{
		{
			name:          "wrong access key",
			respond:       apiError(http.StatusUnauthorized, 2, "Request not allowed (incorrect access_key)", "access_key"),
			wantPermanent: true, wantStatus: 401, wantCode: 2, wantParameter: "access_key",
			wantText: []string{"incorrect access_key", "https://rest.messagebird.com", "bk_<region>_", "access_key"},
		},
		{
			name: "access key sent to the platform API", platform: true,
			wantPermanent: true, wantStatus: 401, wantCode: 1001,
			wantText: []string{"platform API", "https://rest.messagebird.com", "endpoint"},
		},
		{
			name:          "unprocessable recipient",
			respond:       apiError(http.StatusUnprocessableEntity, 9, "no (correct) recipients found", "recipients"),
			wantPermanent: true, wantStatus: 422, wantCode: 9, wantParameter: "recipients",
			wantText: []string{"no (correct) recipients found"},
		},
		{
			name: "description quoting the number and the text",
			respond: func(_ int, w http.ResponseWriter, r *http.Request, m received) {
				apiError(http.StatusUnprocessableEntity, 9, fmt.Sprintf("recipient %s refused for %q", m.Recipients[0], m.Body), "recipients")(0, w, r, m)
			},
			wantPermanent: true, wantStatus: 422, wantCode: 9, wantParameter: "recipients",
			wantText: []string{"refused for"},
		},
		{
			name:          "not enough balance",
			respond:       apiError(http.StatusPaymentRequired, 25, "Not enough balance", ""),
			wantPermanent: true, wantStatus: 402, wantCode: 25,
		},
		{
			name: "internal server error",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ received) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantStatus: 500,
		},
		{
			name:       "api error with a 5xx status",
			respond:    apiError(http.StatusServiceUnavailable, 99, "Internal error", ""),
			wantStatus: 503, wantCode: 99,
		},
		{
			name: "bad gateway page quoting the request",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, m received) {
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintf(w, "<html>upstream failed for %s: %s</html>", m.Recipients, m.Body)
			},
			wantStatus: 502,
		},
		{
			name:       "rate limited",
			respond:    apiError(http.StatusTooManyRequests, 21, "Too many requests", ""),
			wantStatus: 429, wantCode: 21,
		},
		{
			name: "rate limited with Retry-After",
			respond: func(n int, w http.ResponseWriter, r *http.Request, m received) {
				w.Header().Set("Retry-After", "3")
				apiError(http.StatusTooManyRequests, 21, "Too many requests", "")(n, w, r, m)
			},
			wantStatus: 429, wantCode: 21, wantRetryAfter: 3 * time.Second,
		},
		{
			name: "redirect",
			respond: func(_ int, w http.ResponseWriter, r *http.Request, _ received) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			wantPermanent: true, wantStatus: 302,
		},
		{
			name: "accepted with an unreadable answer quoting the body",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, m received) {
				w.WriteHeader(http.StatusCreated)
				fmt.Fprintf(w, `{"body": %q, "recipients": "%s`, m.Body, m.Recipients)
			},
			wantPermanent: true, wantStatus: 201,
		},
		{
			name: "slow answer past the timeout",
			respond: func(_ int, w http.ResponseWriter, r *http.Request, m received) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				created(w, r, m)
			},
			wantCause: context.DeadlineExceeded,
		},
		{
			name:        "connection refused",
			unreachable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var endpoint string
			switch {
			case tt.unreachable:
				endpoint = "http://" + freeport.ClosedAddr(t)
			case tt.platform:
				endpoint = newFakeBird(t, nil).URL
			default:
				endpoint = newFakeMessageBird(t, tt.respond).URL
			}
			mb := newTestMessageBird(t, endpoint, 300*time.Millisecond)

			err := mb.Deliver(context.Background(), testMessage)
			var e *sms.Error
			if !errors.As(err, &e) {
				t.Fatalf("Deliver = %v, want an *Error", err)
			}
			if e.Permanent != tt.wantPermanent || e.Status != tt.wantStatus || e.Code != tt.wantCode ||
				e.Parameter != tt.wantParameter || e.RetryAfter != tt.wantRetryAfter {
				t.Errorf("error = %+v, want permanent %v, status %d, code %d, parameter %q, retry after %s",
					*e, tt.wantPermanent, tt.wantStatus, tt.wantCode, tt.wantParameter, tt.wantRetryAfter)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Errorf("error %v does not wrap %v", err, tt.wantCause)
			}
			if tt.unreachable && (e.Err == nil || e.Status != 0) {
				t.Errorf("error = %+v, want a network error and no status", *e)
			}
			if e.Provider != "messagebird" || !strings.HasPrefix(err.Error(), "messagebird: ") {
				t.Errorf("error %q does not name the provider", err)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestMessageBirdCanceled(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	fake := newFakeMessageBird(t, func(_ int, w http.ResponseWriter, r *http.Request, m received) {
		close(started)
		<-r.Context().Done()
	})
	mb := newTestMessageBird(t, fake.URL, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	err := mb.Deliver(ctx, testMessage)
	var e *sms.Error
	if !errors.As(err, &e) || e.Permanent || !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver = %v, want a retryable error wrapping context.Canceled", err)
	}
}

func TestMessageBirdRefusesBadMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    recovery.Message
	}{
		{"no recipient", recovery.Message{Body: "x"}},
		{"recipient not a number", recovery.Message{To: "+31 6 1234", Body: "x"}},
		{"empty body", recovery.Message{To: testPhone}},
	}
	fake := newFakeMessageBird(t, func(_ int, w http.ResponseWriter, r *http.Request, m received) { created(w, r, m) })
	mb := newTestMessageBird(t, fake.URL, time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mb.Deliver(context.Background(), tt.m)
			var e *sms.Error
			if !errors.As(err, &e) || !e.Permanent {
				t.Errorf("Deliver = %v, want a permanent *Error", err)
			}
		})
	}
	if n := len(fake.requests()); n != 0 {
		t.Errorf("fake got %d requests, want none", n)
	}
}

func TestMessageBirdSettings(t *testing.T) {
	t.Setenv("SMS_TEST_KEY", "live_abc")
	t.Setenv("SMS_TEST_EMPTY", "")
	tests := []struct {
		name    string
		edit    func(*MessageBird)
		wantErr string // a substring of the error; "" for success
	}{
		{"defaults", func(*MessageBird) {}, ""},
		{"numeric originator", func(mb *MessageBird) { mb.Originator = "+31612345678" }, ""},
		{"short code originator", func(mb *MessageBird) { mb.Originator = "3669" }, ""},
		{"originator with a space", func(mb *MessageBird) { mb.Originator = "Example Co" }, ""},
		{"http endpoint", func(mb *MessageBird) { mb.Endpoint = "http://127.0.0.1:8025/" }, ""},
		{"no access key", func(mb *MessageBird) { mb.AccessKey = "" }, "sms messagebird: access_key is required"},
		{"key from an empty variable", func(mb *MessageBird) { mb.AccessKey = "{env.SMS_TEST_EMPTY}" },
			"sms messagebird: access_key: placeholder {env.SMS_TEST_EMPTY} is empty"},
		{"no originator", func(mb *MessageBird) { mb.Originator = "" }, "originator"},
		{"long originator", func(mb *MessageBird) { mb.Originator = "A very long sender name" }, "sms messagebird: originator"},
		{"originator with punctuation", func(mb *MessageBird) { mb.Originator = "Mail!" }, "originator"},
		{"long number originator", func(mb *MessageBird) { mb.Originator = "+12345678901234567" }, "originator"},
		{"plus without digits", func(mb *MessageBird) { mb.Originator = "+Mail" }, "originator"},
		{"relative endpoint", func(mb *MessageBird) { mb.Endpoint = "rest.messagebird.com" }, "endpoint"},
		{"ftp endpoint", func(mb *MessageBird) { mb.Endpoint = "ftp://rest.messagebird.com" }, "endpoint"},
		{"endpoint with a query", func(mb *MessageBird) { mb.Endpoint = "https://rest.messagebird.com/?a=b" }, "endpoint"},
		{"endpoint with credentials", func(mb *MessageBird) { mb.Endpoint = "https://u:p@rest.messagebird.com" }, "endpoint"},
		{"negative timeout", func(mb *MessageBird) { mb.Timeout = caddy.Duration(-time.Second) }, "timeout"},
		{"platform key", func(mb *MessageBird) { mb.AccessKey = testBirdKey }, ""},
		{"platform key at a proxy", func(mb *MessageBird) { mb.AccessKey, mb.Endpoint = testBirdKey, "https://sms-proxy.example.com/bird" }, ""},
		{"platform key at its region's host", func(mb *MessageBird) { mb.AccessKey, mb.Endpoint = testBirdKey, "https://EU1.platform.bird.com/" }, ""},
		{"platform key at the legacy API", func(mb *MessageBird) { mb.AccessKey, mb.Endpoint = testBirdKey, "https://rest.messagebird.com" },
			"sms messagebird: endpoint: https://rest.messagebird.com is MessageBird's legacy REST API, which refuses Bird platform keys: a bk_eu1_… key goes to https://eu1.platform.bird.com"},
		{"platform key at another region", func(mb *MessageBird) { mb.AccessKey, mb.Endpoint = testBirdKey, "https://us1.platform.bird.com" },
			"sms messagebird: endpoint: https://us1.platform.bird.com is not the host of region eu1: a bk_eu1_… key goes to https://eu1.platform.bird.com"},
		{"access key at the platform", func(mb *MessageBird) { mb.Endpoint = "https://eu1.platform.bird.com" },
			"sms messagebird: endpoint: https://eu1.platform.bird.com is Bird's platform API, which takes only keys of the form bk_<region>_…: a MessageBird access key goes to https://rest.messagebird.com"},
		{"bk_ key without a region", func(mb *MessageBird) { mb.AccessKey = "bk_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c" },
			"sms messagebird: access_key: starts with bk_ but is not of the form bk_<region>_<secret>"},
		{"bk_ key with a bad region", func(mb *MessageBird) { mb.AccessKey = "bk_europe_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c" },
			"sms messagebird: access_key: starts with bk_ but is not of the form bk_<region>_<secret>"},
		{"bk_ key cut short", func(mb *MessageBird) { mb.AccessKey = "bk_eu1_" },
			"sms messagebird: access_key: starts with bk_ but is not of the form bk_<region>_<secret>"},
		{"bird_live_ key", func(mb *MessageBird) { mb.AccessKey = "bird_live_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c" },
			"sms messagebird: access_key: a bird_live_ or bird_test_ key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb := &MessageBird{AccessKey: "{env.SMS_TEST_KEY}", Originator: "ExampleMail"}
			tt.edit(mb)
			_, err := guesttest.Load(t, mb)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("load: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("load succeeded, want an error about %s", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not name %s", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c"):
				t.Fatalf("error %q quotes the key", err)
			}
		})
	}
	t.Run("placeholders expanded, defaults filled", func(t *testing.T) {
		mb, err := guesttest.Load(t, &MessageBird{AccessKey: "{env.SMS_TEST_KEY}", Originator: "ExampleMail"})
		if err != nil {
			t.Fatal(err)
		}
		if mb.AccessKey != "live_abc" || mb.Endpoint != "https://rest.messagebird.com" ||
			mb.Timeout != caddy.Duration(10*time.Second) || mb.transport == nil {
			t.Errorf("access_key %q, endpoint %q, timeout %s, transport %v; want the variable's value and the defaults",
				mb.AccessKey, mb.Endpoint, time.Duration(mb.Timeout), mb.transport)
		}
	})
	t.Run("a platform key's endpoint is its region's host", func(t *testing.T) {
		t.Setenv("SMS_TEST_BIRD_KEY", "bk_us1_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c")
		mb, err := guesttest.Load(t, &MessageBird{AccessKey: "{env.SMS_TEST_BIRD_KEY}", Originator: "ExampleMail"})
		if err != nil {
			t.Fatal(err)
		}
		if mb.Endpoint != "https://us1.platform.bird.com" {
			t.Errorf("endpoint %q, want https://us1.platform.bird.com", mb.Endpoint)
		}
	})
}

func TestMessageBirdUnmarshalCaddyfile(t *testing.T) {
	t.Parallel()
	guesttest.Unmarshal(t, []guesttest.Case{
		{Name: "block", Mod: &MessageBird{}, Input: "messagebird {\naccess_key {env.K}\noriginator Mail\ntimeout 5s\n}",
			Want: `{"access_key":"{env.K}","originator":"Mail","timeout":5000000000}`},
		{Name: "unknown", Mod: &MessageBird{}, Input: "messagebird {\napi_key x\n}",
			Want: "error: sms messagebird: unrecognized subdirective 'api_key'"},
	})
}

// TestQueueWithMessageBird: behind a queue, a message is delivered exactly
// once, and reported once, whatever the provider answers.
func TestQueueWithMessageBird(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		respond      func(n int, w http.ResponseWriter, r *http.Request, m received)
		wantResult   sms.Result
		wantRequests int
		wantStatus   int
		wantCode     int
	}{
		{
			name: "two 500s then accepted: delivered exactly once",
			respond: func(n int, w http.ResponseWriter, r *http.Request, m received) {
				if n <= 2 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				created(w, r, m)
			},
			wantResult: sms.ResultSent, wantRequests: 3,
		},
		{
			name:       "wrong access key: one request, reported once",
			respond:    apiError(http.StatusUnauthorized, 2, "Request not allowed (incorrect access_key)", "access_key"),
			wantResult: sms.ResultRejected, wantRequests: 1, wantStatus: 401, wantCode: 2,
		},
		{
			name: "always 500: retries exhausted",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ received) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantResult: sms.ResultExhausted, wantRequests: 5, wantStatus: 500,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeMessageBird(t, tt.respond)
			out := make(chan sms.Outcome, 10)
			q := sms.NewQueue(newTestMessageBird(t, fake.URL, 5*time.Second), sms.QueueConfig{
				Workers:          1,
				BreakerThreshold: 1000,
				Observe:          func(o sms.Outcome) { out <- o },
				Sleep:            func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
			})
			if err := q.Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			if err := q.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			close(out)
			if n := len(out); n != 1 {
				t.Fatalf("%d outcomes reported, want 1", n)
			}
			o := <-out
			if o.Result != tt.wantResult || o.Status != tt.wantStatus || o.Code != tt.wantCode {
				t.Errorf("outcome = %s, status %d, code %d (%v); want %s, status %d, code %d",
					o.Result, o.Status, o.Code, o.Err, tt.wantResult, tt.wantStatus, tt.wantCode)
			}
			reqs := fake.requests()
			if len(reqs) != tt.wantRequests || o.Attempts != tt.wantRequests {
				t.Errorf("fake got %d requests, outcome counts %d; want %d", len(reqs), o.Attempts, tt.wantRequests)
			}
			for _, r := range reqs {
				if r.Body.Body != testMessage.Body || r.Body.Reference != testMessage.Reference {
					t.Errorf("request %+v is not the message", r.Body)
				}
			}
			assertNoSecrets(t, o.Err)
		})
	}
}
