package failover

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// reply is what a fake provider does with one request.
type reply struct {
	status int  // 202 accepts the message; any other status refuses it
	lose   bool // accept the message, then hang up without an answer
}

var (
	accept = reply{status: http.StatusAccepted}
	// loseAnswer sends the message and never answers: the answer is lost
	// after the provider took it.
	loseAnswer = reply{status: http.StatusAccepted, lose: true}
)

func refuse(status int) reply { return reply{status: status} }

// provider is a stand-in for Bird's platform API (POST /v1/sms/messages,
// Authorization: Bearer bk_…, an Idempotency-Key per message), as much of
// it as the failover needs: answer decides the n-th request (from 1), and,
// like the API, it sends a message at most once per idempotency key: a
// request it accepts under a key it has sent before sends nothing again.
type provider struct {
	*httptest.Server
	answer func(n int) reply

	mu   sync.Mutex
	keys []string       // the Idempotency-Key of every request, in order
	sent map[string]int // messages sent to a phone, by idempotency key
}

func newProvider(t *testing.T, answer func(n int) reply) *provider {
	t.Helper()
	p := &provider{answer: answer, sent: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// always answers every request with r.
func always(r reply) func(int) reply { return func(int) reply { return r } }

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	var m struct{ To, From, Text, Category string }
	raw, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	if r.URL.Path != "/v1/sms/messages" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer bk_") ||
		key == "" || json.Unmarshal(raw, &m) != nil || m.Category != "authentication" {
		birdError(w, http.StatusBadRequest, "E00001", "not a send this fake knows", "")
		return
	}
	p.mu.Lock()
	p.keys = append(p.keys, key)
	rep := p.answer(len(p.keys))
	if rep.status == http.StatusAccepted && p.sent[key] == 0 {
		p.sent[key]++
	}
	p.mu.Unlock()
	switch {
	case rep.lose:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case rep.status == http.StatusAccepted:
		birdAccepted(w, key)
	default:
		refusal(w, rep.status)
	}
}

func birdAccepted(w http.ResponseWriter, key string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"id":"sms_%s","status":"accepted","category":"authentication"}`, key)
}

// refusal answers with status in the platform API's error envelope.
func refusal(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		birdError(w, status, "E12001", "to must be an E.164 number", "to")
	case http.StatusUnauthorized:
		birdError(w, status, "E01001", "the key is malformed, unknown or revoked", "")
	case http.StatusPaymentRequired:
		birdError(w, status, "E02001", "the workspace's balance is spent", "")
	case http.StatusForbidden:
		birdError(w, status, "E01003", "the key may not send SMS", "")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "7")
		birdError(w, status, "E05001", "too many requests", "")
	default:
		birdError(w, status, "E50000", "internal error", "")
	}
}

func birdError(w http.ResponseWriter, status int, code, message, param string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message, "param": param}})
}

// requests returns the Idempotency-Key of every request so far.
func (p *provider) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// sentBy returns how many SMS went out under each idempotency key.
func (p *provider) sentBy() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.sent))
	for k, v := range p.sent {
		out[k] = v
	}
	return out
}
