package messagebird

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// platformPath is the path of a send in Bird's platform API, after the
// endpoint's own.
const platformPath = "/v1/sms/messages"

// userAgent names the gateway to the platform API, which refuses requests
// without one.
const userAgent = "caddy-sms-recovery"

// platformSMS is the body of a free-text send in Bird's platform API.
// validity_period is left out: the API refuses it for now (422).
type platformSMS struct {
	To       string            `json:"to"` // E.164, with the +
	From     string            `json:"from"`
	Text     string            `json:"text"`
	Category string            `json:"category"` // "authentication": codes and notices of the recovery
	Metadata map[string]string `json:"metadata,omitempty"`
}

// errNoIdempotencyKey refuses a platform send without the message's key:
// a retry under a new key could text the person twice.
var errNoIdempotencyKey = errors.New("no idempotency key: deliver through an sms.Queue, or name one with sms.WithIdempotencyKey")

// deliverPlatform sends m to msisdn through Bird's platform API, under
// the message's idempotency key, so that a try whose answer was lost and
// the retry that follows are one SMS.
func (mb *MessageBird) deliverPlatform(ctx context.Context, m recovery.Message, msisdn string) error {
	key := sms.IdempotencyKey(ctx)
	if key == "" {
		return &sms.Error{Provider: provider, Permanent: true, Err: errNoIdempotencyKey}
	}
	send := platformSMS{To: "+" + msisdn, From: mb.Originator, Text: m.Body, Category: "authentication"}
	if m.Reference != "" {
		send.Metadata = map[string]string{"reference": m.Reference}
	}
	body, err := json.Marshal(send)
	if err != nil {
		return &sms.Error{Provider: provider, Permanent: true, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, mb.Endpoint+platformPath, bytes.NewReader(body))
	if err != nil {
		return &sms.Error{Provider: provider, Permanent: true, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+mb.AccessKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("User-Agent", userAgent)

	resp, err := mb.client.Do(req)
	if err != nil {
		return &sms.Error{Provider: provider, Err: err} // no answer: network error or timeout
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return &sms.Error{Provider: provider, Err: err} // the answer broke off; the key makes a retry safe
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		var sent struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &sent) == nil && sent.ID != "" {
			return nil
		}
	}
	return mb.refusal(answer{status: resp.StatusCode, header: resp.Header, body: raw}, m)
}
