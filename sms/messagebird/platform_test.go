package messagebird

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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

// testBirdKey is a Bird platform key of region eu1, in the form Bird's Go
// SDK reads: bk_{region}_{secret}.
const testBirdKey = "bk_eu1_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c"

// birdSMS is the body of POST /v1/sms/messages as Bird's platform API
// defines it (the SDK's SMSMessageSendRequest), the fields a free-text send
// uses.
type birdSMS struct {
	To       string            `json:"to"`
	From     string            `json:"from"`
	Text     string            `json:"text"`
	Category string            `json:"category"`
	Metadata map[string]string `json:"metadata"`
}

type birdRequest struct {
	Method, Path                          string
	Auth, ContentType, Idempotency, Agent string
	Body                                  birdSMS
	Raw                                   map[string]json.RawMessage
}

// fakeBird is a stand-in for Bird's platform API in one region, built
// from the SDK's reference: Bearer keys of the form bk_{region}_…, 401
// with the {"error": {...}} envelope for any other key, 421 for a key of
// another region, POST /v1/sms/messages answered 202 with the message, and
// a request whose Idempotency-Key it has accepted before answered with the
// first answer again, without sending anything. respond answers the n-th
// request (from 1) that reaches the endpoint; nil accepts it.
type fakeBird struct {
	*httptest.Server
	region, key string
	respond     func(n int, w http.ResponseWriter, r *http.Request, m birdSMS)

	mu       sync.Mutex
	reqs     []birdRequest
	accepted map[string][]byte // the first 2xx answer, by Idempotency-Key
	sent     []birdSMS         // messages sent to a phone
}

func newFakeBird(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request, m birdSMS)) *fakeBird {
	t.Helper()
	f := &fakeBird{region: "eu1", key: testBirdKey, respond: respond, accepted: map[string][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// birdError writes the platform API's error envelope.
func birdError(w http.ResponseWriter, status int, typ, code, name, message, param string) {
	e := map[string]any{"type": typ, "code": code, "name": name, "message": message,
		"doc_url": "https://docs.bird.com/errors/" + code, "request_id": "req_2f8a"}
	if param != "" {
		e["param"] = param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (f *fakeBird) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch region, _, _ := strings.Cut(strings.TrimPrefix(token, "bk_"), "_"); {
	case !bearer || !strings.HasPrefix(token, "bk_"):
		birdError(w, http.StatusUnauthorized, "auth_error", "E01001", "Unauthorized",
			"The Authorization header is missing, or the key is malformed, unknown or revoked.", "")
		return
	case region != f.region:
		birdError(w, http.StatusMisdirectedRequest, "misdirected_error", "E01010", "MisdirectedRequest",
			fmt.Sprintf("Organization belongs to region %s but this request reached %s. Send the request to %s.platform.bird.com.", region, f.region, region), "")
		return
	case token != f.key:
		birdError(w, http.StatusUnauthorized, "auth_error", "E01001", "Unauthorized",
			"The Authorization header is missing, or the key is malformed, unknown or revoked.", "")
		return
	case r.Method != http.MethodPost || r.URL.Path != "/v1/sms/messages":
		birdError(w, http.StatusNotFound, "not_found_error", "E40400", "NotFound", "No such route.", "")
		return
	}
	req := birdRequest{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"), Idempotency: r.Header.Get("Idempotency-Key"), Agent: r.Header.Get("User-Agent")}
	if err := json.Unmarshal(raw, &req.Body); err != nil {
		birdError(w, http.StatusBadRequest, "bad_request_error", "E00001", "MalformedJSON", "The body is not valid JSON.", "")
		return
	}
	_ = json.Unmarshal(raw, &req.Raw)

	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	replay, seen := f.accepted[req.Idempotency]
	f.mu.Unlock()
	if seen {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(replay)
		return
	}
	if f.respond != nil {
		f.respond(n, w, r, req.Body)
		return
	}
	f.accept(w, req)
}

// accept sends m and answers 202 with the message, as the API does for a
// free-text send: from and category required, one E.164 recipient.
func (f *fakeBird) accept(w http.ResponseWriter, req birdRequest) {
	m := req.Body
	switch {
	case m.Category == "":
		birdError(w, http.StatusUnprocessableEntity, "validation_error", "E12002", "MissingCategory", "category is required with text.", "category")
		return
	case m.From == "":
		birdError(w, http.StatusUnprocessableEntity, "validation_error", "E12003", "SMSNoEligibleSender", "from is required with text.", "from")
		return
	case !strings.HasPrefix(m.To, "+") || !isDigits(m.To[1:]):
		birdError(w, http.StatusUnprocessableEntity, "validation_error", "E12001", "InvalidRecipient", "to must be an E.164 number.", "to")
		return
	}
	f.mu.Lock()
	answer, _ := json.Marshal(map[string]any{
		"id": fmt.Sprintf("sms_%08x", len(f.sent)+1), "from": m.From, "to": m.To, "text": m.Text,
		"category": m.Category, "status": "accepted", "direction": "outbound", "metadata": m.Metadata,
		"segments":   map[string]any{"count": 1, "characters": len(m.Text), "encoding": "GSM_7BIT"},
		"created_at": time.Now().UTC().Format(time.RFC3339),
	})
	f.sent = append(f.sent, m)
	if req.Idempotency != "" {
		f.accepted[req.Idempotency] = answer
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(answer)
}

func (f *fakeBird) requests() []birdRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeBird) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// acceptNth answers like the API from the n-th request on, and with fail
// before.
func acceptNth(f **fakeBird, from int, fail func(w http.ResponseWriter)) func(int, http.ResponseWriter, *http.Request, birdSMS) {
	return func(n int, w http.ResponseWriter, r *http.Request, _ birdSMS) {
		if n < from {
			fail(w)
			return
		}
		(*f).accept(w, (*f).requests()[n-1])
	}
}

func newTestBird(t *testing.T, key, endpoint string, timeout time.Duration) *MessageBird {
	t.Helper()
	mb, err := guesttest.Load(t, &MessageBird{AccessKey: key, Originator: "ExampleMail", Endpoint: endpoint, Timeout: caddy.Duration(timeout)})
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// withKey is the context of a delivery outside a queue: the test names
// the message's idempotency key, as the queue does.
func withKey(key string) context.Context {
	return sms.WithIdempotencyKey(context.Background(), key)
}

func TestPlatformRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, prefix string // prefix: the path of the endpoint, before the API's
	}{
		{"endpoint", ""},
		{"endpoint with a path", "/bird"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeBird(t, nil)
			endpoint := fake.URL
			if tt.prefix != "" {
				proxy := httptest.NewServer(http.StripPrefix(tt.prefix, fake.Config.Handler))
				t.Cleanup(proxy.Close)
				endpoint = proxy.URL + tt.prefix + "/"
			}
			mb := newTestBird(t, testBirdKey, endpoint, 5*time.Second)
			if err := mb.Deliver(withKey("3c1d0f6e-6b7a-4c52-9b1e-2f1a7e5d9c40"), testMessage); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			reqs := fake.requests()
			if len(reqs) != 1 || fake.sentCount() != 1 {
				t.Fatalf("fake got %d requests and sent %d messages, want 1 and 1", len(reqs), fake.sentCount())
			}
			got := reqs[0]
			if got.Method != http.MethodPost || got.Path != "/v1/sms/messages" {
				t.Errorf("request = %s %s, want POST /v1/sms/messages", got.Method, got.Path)
			}
			if want := "Bearer " + testBirdKey; got.Auth != want {
				t.Errorf("Authorization = %q, want %q", got.Auth, want)
			}
			if got.Idempotency != "3c1d0f6e-6b7a-4c52-9b1e-2f1a7e5d9c40" {
				t.Errorf("Idempotency-Key = %q, want the message's key", got.Idempotency)
			}
			if !strings.HasPrefix(got.ContentType, "application/json") || got.Agent == "" || strings.HasPrefix(got.Agent, "Go-http-client") {
				t.Errorf("Content-Type %q, User-Agent %q; want JSON and a User-Agent of our own", got.ContentType, got.Agent)
			}
			b := got.Body
			if b.To != testPhone || b.From != "ExampleMail" || b.Text != testMessage.Body || b.Category != "authentication" {
				t.Errorf("body = %+v, want to %s, from ExampleMail, the exact text, category authentication", b, testPhone)
			}
			if b.Metadata["reference"] != testMessage.Reference {
				t.Errorf("metadata = %v, want the reference %q", b.Metadata, testMessage.Reference)
			}
			// validity_period is a preview field the API refuses with 422.
			for k := range got.Raw {
				if !slices.Contains([]string{"to", "from", "text", "category", "metadata"}, k) {
					t.Errorf("body has field %q, beyond to, from, text, category and metadata", k)
				}
			}
		})
	}
}

// TestPlatformRefusesWithoutIdempotencyKey: a platform send is never made
// without the message's key, which only the queue can keep across tries.
func TestPlatformRefusesWithoutIdempotencyKey(t *testing.T) {
	t.Parallel()
	fake := newFakeBird(t, nil)
	mb := newTestBird(t, testBirdKey, fake.URL, time.Second)
	err := mb.Deliver(context.Background(), testMessage)
	var e *sms.Error
	if !errors.As(err, &e) || !e.Permanent || !strings.Contains(err.Error(), "idempotency key") {
		t.Errorf("Deliver = %v, want a permanent error about the idempotency key", err)
	}
	if n := len(fake.requests()); n != 0 {
		t.Errorf("fake got %d requests, want none", n)
	}
}

func TestPlatformErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		respond        func(int, http.ResponseWriter, *http.Request, birdSMS)
		key            string // default testBirdKey
		legacy         bool   // the endpoint is the legacy API's fake
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
			name: "unknown key", key: "bk_eu1_Zz9yXw8vU7tS6rQ5pO4nM3lK2jI1hG",
			wantPermanent: true, wantStatus: 401, wantCode: 1001,
			wantText: []string{"key is malformed, unknown or revoked", "bk_eu1_", "https://eu1.platform.bird.com", "https://rest.messagebird.com", "access_key"},
		},
		{
			name: "platform key sent to the legacy API", legacy: true,
			wantPermanent: true, wantStatus: 401, wantCode: 2, wantParameter: "access_key",
			wantText: []string{"legacy", "https://eu1.platform.bird.com", "endpoint"},
		},
		{
			name: "key of another region", key: "bk_us1_Ab3xKq9mP2wR5tY8uI1oL4nJq7Vz0c",
			wantPermanent: true, wantStatus: 421, wantCode: 1010,
			wantText: []string{"Send the request to us1.platform.bird.com", "https://us1.platform.bird.com", "endpoint"},
		},
		{
			name: "rate limited, Retry-After in seconds",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				w.Header().Set("Retry-After", "7")
				birdError(w, http.StatusTooManyRequests, "rate_limit_error", "E00429", "RateLimited", "Too many requests.", "")
			},
			wantStatus: 429, wantCode: 429, wantRetryAfter: 7 * time.Second,
		},
		{
			name: "unavailable, Retry-After as a date",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				w.Header().Set("Date", "Wed, 21 Oct 2026 07:28:00 GMT")
				w.Header().Set("Retry-After", "Wed, 21 Oct 2026 07:28:30 GMT")
				birdError(w, http.StatusServiceUnavailable, "service_unavailable_error", "E00503", "Unavailable", "Try again later.", "")
			},
			wantStatus: 503, wantCode: 503, wantRetryAfter: 30 * time.Second,
		},
		{
			name: "request timeout",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				birdError(w, http.StatusRequestTimeout, "bad_request_error", "E00408", "RequestTimeout", "The request took too long to arrive.", "")
			},
			wantStatus: 408, wantCode: 408,
		},
		{
			name: "internal error",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				birdError(w, http.StatusInternalServerError, "internal_error", "E00500", "Internal", "Something went wrong.", "")
			},
			wantStatus: 500, wantCode: 500,
		},
		{
			name: "bad gateway page quoting the request",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, m birdSMS) {
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintf(w, "<html>upstream failed for %s: %s</html>", m.To, m.Text)
			},
			wantStatus: 502,
		},
		{
			name: "validation error quoting the number, the text and the key",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, m birdSMS) {
				birdError(w, http.StatusUnprocessableEntity, "validation_error", "E12001", "InvalidRecipient",
					fmt.Sprintf("Recipient %s (31 6 12345678) is not reachable with %q using key %s", m.To, m.Text, testBirdKey), "to")
			},
			wantPermanent: true, wantStatus: 422, wantCode: 12001, wantParameter: "to",
			wantText: []string{"Recipient +31*****678", "is not reachable"},
		},
		{
			name: "bad request",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				birdError(w, http.StatusBadRequest, "bad_request_error", "E00002", "BadRequest", "from is not a sender of this workspace.", "from")
			},
			wantPermanent: true, wantStatus: 400, wantCode: 2, wantParameter: "from",
			wantText: []string{"from is not a sender of this workspace"},
		},
		{
			name: "key without permission",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
				birdError(w, http.StatusForbidden, "permission_error", "E01003", "Forbidden", "The key lacks the scope this endpoint needs.", "")
			},
			wantPermanent: true, wantStatus: 403, wantCode: 1003,
			wantText: []string{"lacks the scope", "permission to send SMS"},
		},
		{
			name: "redirect",
			respond: func(_ int, w http.ResponseWriter, r *http.Request, _ birdSMS) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			wantPermanent: true, wantStatus: 302,
		},
		{
			name: "accepted with an unreadable answer quoting the body",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request, m birdSMS) {
				w.WriteHeader(http.StatusAccepted)
				fmt.Fprintf(w, `{"text": %q, "to": "%s`, m.Text, m.To)
			},
			wantPermanent: true, wantStatus: 202, wantText: []string{"unreadable answer"},
		},
		{
			name: "slow answer past the timeout",
			respond: func(_ int, w http.ResponseWriter, r *http.Request, _ birdSMS) {
				<-r.Context().Done()
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
			case tt.legacy:
				endpoint = newFakeMessageBird(t, func(_ int, w http.ResponseWriter, r *http.Request, m received) { created(w, r, m) }).URL
			default:
				endpoint = newFakeBird(t, tt.respond).URL
			}
			key := testBirdKey
			if tt.key != "" {
				key = tt.key
			}
			mb := newTestBird(t, key, endpoint, 300*time.Millisecond)

			err := mb.Deliver(withKey("k1"), testMessage)
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
			assertNoSecrets(t, err, key)
		})
	}
}

// TestQueueWithBird: behind a queue, every try of a message carries one
// Idempotency-Key, so that a message Bird accepted whose answer was lost
// is not sent again; a 429's Retry-After is waited out; 5xx is retried and
// 4xx is not.
func TestQueueWithBird(t *testing.T) {
	t.Parallel()
	unavailable := func(w http.ResponseWriter) {
		birdError(w, http.StatusServiceUnavailable, "service_unavailable_error", "E00503", "Unavailable", "Try again later.", "")
	}
	tests := []struct {
		name         string
		respond      func(f **fakeBird) func(int, http.ResponseWriter, *http.Request, birdSMS)
		wantResult   sms.Result
		wantRequests int
		wantSent     int
		wantStatus   int
		wantWaits    []time.Duration // the waits at least as long as asked
	}{
		{
			name: "two 5xx then accepted: sent once, one key",
			respond: func(f **fakeBird) func(int, http.ResponseWriter, *http.Request, birdSMS) {
				return acceptNth(f, 3, unavailable)
			},
			wantResult: sms.ResultSent, wantRequests: 3, wantSent: 1,
		},
		{
			name: "accepted, answer lost: the retry is answered from the first, nothing sent twice",
			respond: func(f **fakeBird) func(int, http.ResponseWriter, *http.Request, birdSMS) {
				return func(n int, w http.ResponseWriter, r *http.Request, m birdSMS) {
					if n == 1 {
						(*f).accept(httptest.NewRecorder(), (*f).requests()[0]) // sent, but the answer never comes
						<-r.Context().Done()
						return
					}
					(*f).accept(w, (*f).requests()[n-1])
				}
			},
			wantResult: sms.ResultSent, wantRequests: 2, wantSent: 1,
		},
		{
			name: "429 with Retry-After: waited out, then sent",
			respond: func(f **fakeBird) func(int, http.ResponseWriter, *http.Request, birdSMS) {
				return acceptNth(f, 2, func(w http.ResponseWriter) {
					w.Header().Set("Retry-After", "12")
					birdError(w, http.StatusTooManyRequests, "rate_limit_error", "E00429", "RateLimited", "Too many requests.", "")
				})
			},
			wantResult: sms.ResultSent, wantRequests: 2, wantSent: 1, wantWaits: []time.Duration{12 * time.Second},
		},
		{
			name: "400: one request, rejected",
			respond: func(f **fakeBird) func(int, http.ResponseWriter, *http.Request, birdSMS) {
				return func(_ int, w http.ResponseWriter, _ *http.Request, _ birdSMS) {
					birdError(w, http.StatusBadRequest, "bad_request_error", "E00002", "BadRequest", "from is not a sender of this workspace.", "from")
				}
			},
			wantResult: sms.ResultRejected, wantRequests: 1, wantStatus: 400,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var fake *fakeBird
			fake = newFakeBird(t, tt.respond(&fake))
			out := make(chan sms.Outcome, 10)
			var mu sync.Mutex
			var waits []time.Duration
			q := sms.NewQueue(newTestBird(t, testBirdKey, fake.URL, 500*time.Millisecond), sms.QueueConfig{
				Workers:          1,
				BreakerThreshold: 1000,
				Observe:          func(o sms.Outcome) { out <- o },
				Sleep: func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					waits = append(waits, d)
					mu.Unlock()
					return ctx.Err()
				},
			})
			for _, m := range []recovery.Message{testMessage, testMessage} { // a resend: the same text again
				if err := q.Send(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			close(out)
			if n := len(out); n != 2 {
				t.Fatalf("%d outcomes reported, want 2", n)
			}
			o := <-out
			if o.Result != tt.wantResult || o.Status != tt.wantStatus || o.Attempts != tt.wantRequests {
				t.Errorf("outcome = %s after %d attempts, status %d (%v); want %s after %d, status %d",
					o.Result, o.Attempts, o.Status, o.Err, tt.wantResult, tt.wantRequests, tt.wantStatus)
			}
			reqs := fake.requests()
			if len(reqs) < tt.wantRequests {
				t.Fatalf("fake got %d requests, want %d for the first message", len(reqs), tt.wantRequests)
			}
			first, second := reqs[:tt.wantRequests], reqs[tt.wantRequests:]
			for _, r := range first {
				if r.Idempotency == "" || r.Idempotency != first[0].Idempotency {
					t.Errorf("tries carry keys %q and %q, want one key", first[0].Idempotency, r.Idempotency)
				}
			}
			if len(second) == 0 || second[0].Idempotency == first[0].Idempotency {
				t.Errorf("the second message came with %d requests, key %v; want its own key", len(second), second)
			}
			if tt.wantSent > 0 && fake.sentCount() != tt.wantSent+1 {
				t.Errorf("fake sent %d messages for two, want %d", fake.sentCount(), tt.wantSent+1)
			}
			mu.Lock()
			for i, w := range tt.wantWaits {
				if i >= len(waits) || waits[i] < w {
					t.Errorf("waits = %v, want at least %v", waits, tt.wantWaits)
				}
			}
			mu.Unlock()
			assertNoSecrets(t, o.Err, testBirdKey)
		})
	}
}
