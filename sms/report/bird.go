package report

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BirdTolerance is how far a Bird webhook's timestamp may be from the
// gateway's clock: an older delivery is refused as a replay, as Bird's SDK
// does.
const BirdTolerance = 5 * time.Minute

// BirdSecret decodes the signing secret of a Bird webhook subscription:
// whsec_ followed by the base64 of the key.
func BirdSecret(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(b) == 0 {
		return nil, errors.New("is not whsec_ followed by base64, as Bird shows a webhook's signing secret")
	}
	return b, nil
}

// birdStatus maps Bird's SMS event types onto statuses; other events are
// not about delivery.
var birdStatus = map[string]Status{
	"sms.delivered":   Delivered,
	"sms.failed":      Failed,
	"sms.undelivered": Failed,
	"sms.rejected":    Failed,
	"sms.expired":     Failed,
	"sms.accepted":    Accepted,
	"sms.sent":        Accepted,
}

// birdEvent is the part of a Bird webhook event read here.
type birdEvent struct {
	Type string `json:"type"`
	Data struct {
		To string `json:"to"`
	} `json:"data"`
}

// ReadBird reads one delivery of a Bird webhook, header and body as they
// arrived, signed with one of secrets (BirdSecret) within BirdTolerance
// of now. A delivery without a valid signature is ErrForged; an event
// that is not about delivery gives a Report with no Status.
func ReadBird(secrets [][]byte, h http.Header, body []byte, now time.Time) (Report, error) {
	if err := checkBird(secrets, h, body, now); err != nil {
		return Report{}, err
	}
	var ev birdEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return Report{}, fmt.Errorf("%w: not a Bird webhook event", ErrMalformed)
	}
	r := Report{Provider: Bird, Status: birdStatus[ev.Type]}
	if r.Status != "" {
		r.Country = Country(ev.Data.To)
	}
	return r, nil
}

// checkBird checks a Standard Webhooks signature: HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>", base64, among the
// space-separated "v1,<signature>" entries of webhook-signature.
func checkBird(secrets [][]byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: no webhook-id, webhook-timestamp or webhook-signature", ErrForged)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp is not a number", ErrForged)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > BirdTolerance || d < -BirdTolerance {
		return fmt.Errorf("%w: webhook-timestamp is more than %s from now", ErrForged, BirdTolerance)
	}
	var want [sha256.Size]byte
	for _, key := range secrets {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		mac.Sum(want[:0])
		for entry := range strings.FieldsSeq(sigs) {
			version, sig, _ := strings.Cut(entry, ",")
			got, err := base64.StdEncoding.DecodeString(sig)
			if version == "v1" && err == nil && hmac.Equal(got, want[:]) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrForged)
}
