package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// apiError is the JSON body of every error answer, and the error a refusal
// is returned to Caddy as with handle_errors.
type apiError struct {
	status     int
	Code       string `json:"error"`
	Message    string `json:"message"`
	RetryAfter *int64 `json:"retry_after,omitempty"`
	Attempts   *int   `json:"attempts_left,omitempty"`
	Support    string `json:"support,omitempty"`

	denial *recovery.Denial
}

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, Code: code, Message: message}
}

// Error returns the message of the answer, which is meant for the person
// asking: a site's handle_errors routes show it as {http.error.message}.
func (e *apiError) Error() string { return e.Message }

var (
	errTooLarge     = newError(http.StatusRequestEntityTooLarge, "too_large", "The request body is larger than 64 KiB.")
	errBadJSON      = newError(http.StatusBadRequest, "invalid_request", "The request body is not the JSON object this endpoint expects.")
	errMediaType    = newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the request as application/json.")
	errNotFound     = newError(http.StatusNotFound, "not_found", "There is no such recovery endpoint.")
	errMethod       = newError(http.StatusMethodNotAllowed, "method_not_allowed", "This endpoint does not take that method.")
	errUpstream     = newError(http.StatusBadGateway, "upstream_unavailable", "The mail service could not be reached. Your reset link is still valid: try again in a minute.")
	errInvalidToken = newError(http.StatusUnauthorized, "invalid_token", "The reset token is unknown, expired or already used. Start again.")
	// errCSRF is a page's form post without the browser's CSRF token: the
	// pages answer it, never the JSON API.
	errCSRF = newError(http.StatusForbidden, "csrf", "The form has expired. Go back, reload the page and send it again.")
)

// errorFor maps an outcome of the flow onto its HTTP answer. Statuses are
// chosen here and nowhere else.
func (h *Handler) errorFor(err error) *apiError {
	var (
		d   *recovery.Denial
		ce  *recovery.CodeError
		out *apiError
	)
	switch {
	case errors.As(err, &ce):
		left := ce.AttemptsLeft
		out = newError(http.StatusBadRequest, codeInvalidCode, msgInvalidCode)
		out.Attempts = &left
	case errors.As(err, &d):
		switch {
		case errors.Is(d, recovery.ErrLocked) && d.Permanent:
			out = newError(http.StatusLocked, "account_locked", "Recovery for this account is locked after too many wrong codes in a row. Support can unlock it.")
			out.Support = h.Support
		case errors.Is(d, recovery.ErrLocked):
			out = newError(http.StatusLocked, "account_locked", "Recovery for this account is locked for a while after too many wrong codes.")
			out.Support = h.Support
		case errors.Is(d, recovery.ErrFull):
			// Rather than forget a lock to make room, the gateway refuses.
			out = newError(http.StatusServiceUnavailable, "unavailable", "Recovery is busy right now. Try again in a minute.")
		case errors.Is(d, recovery.ErrBlocked):
			out = newError(http.StatusForbidden, "ip_blocked", "Too many wrong codes came from your network. Try again later.")
		default:
			out = newError(http.StatusTooManyRequests, "rate_limited", "Too many requests. Wait before trying again.")
		}
		secs := retrySeconds(d.RetryAfter)
		out.RetryAfter = &secs
		out.denial = d
	case errors.Is(err, recovery.ErrInvalidRequest):
		out = newError(http.StatusBadRequest, "invalid_request", "The account, flow or code is missing or malformed.")
	case errors.Is(err, recovery.ErrExpired):
		out = newError(http.StatusGone, "expired", "This code has expired or was used up. Start again to get a new one.")
	case errors.Is(err, recovery.ErrInvalidToken):
		return errInvalidToken
	case errors.Is(err, recovery.ErrStateLost):
		// The locks and counts that were lost cannot be told from none:
		// until an operator acknowledges the loss, nothing is decided on
		// them, for any account (see storage/redis, epoch.go).
		out = newError(http.StatusServiceUnavailable, "unavailable",
			"Recovery is paused while its records are checked after a storage failure. Try again later, or contact support.")
		out.Support = h.Support
		secs := int64(stateLostRetry / time.Second)
		out.RetryAfter = &secs
	case errors.Is(err, recovery.ErrUnavailable):
		out = newError(http.StatusServiceUnavailable, "unavailable", "Recovery is unavailable right now. Try again in a minute.")
		secs := int64(30)
		out.RetryAfter = &secs
	default:
		out = newError(http.StatusInternalServerError, "internal_error", "Something went wrong on our side.")
	}
	return out
}

// stateLostRetry is the Retry-After of a refusal while the store's lost
// state waits for an operator: long, since it needs a person.
const stateLostRetry = 5 * time.Minute

func retrySeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// The placeholders a refusal sets, for the site's log fields, matchers and
// handle_errors routes: the error code of the answer, its Retry-After in
// seconds and the limit that refused (a Denial's scope); the last two are
// empty when the answer has none.
const (
	placeholderError      = "http.sms_recovery.error"
	placeholderRetryAfter = "http.sms_recovery.retry_after"
	placeholderScope      = "http.sms_recovery.scope"
)

// setPlaceholders sets the placeholders of the refusal e in the replacer
// Caddy's server puts in every request's context. All three are set, the
// empty ones too, so that a route's {http.sms_recovery.scope} never stays
// as written.
func setPlaceholders(r *http.Request, e *apiError) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	retry, scope := "", ""
	if e.RetryAfter != nil {
		retry = strconv.FormatInt(*e.RetryAfter, 10)
	}
	if e.denial != nil {
		scope = e.denial.Scope
	}
	repl.Set(placeholderError, e.Code)
	repl.Set(placeholderRetryAfter, retry)
	repl.Set(placeholderScope, scope)
}

// refuse answers a refusal of the JSON API as Caddy's own handlers do: it
// sets the headers and the placeholders, then writes e as JSON or, with
// handle_errors, returns it as a caddyhttp.Error for the site's
// handle_errors routes to answer. The security event, if any, was emitted
// by the flow when it refused.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *apiError) error {
	setPlaceholders(r, e)
	if !h.HandleErrors {
		writeError(w, e)
		return nil
	}
	hdr := w.Header()
	setRefusalHeaders(hdr, e)
	hdr["Cache-Control"] = noStore
	return caddyhttp.Error(e.status, e)
}

// setRefusalHeaders sets the headers the status of e needs: Retry-After,
// and the RateLimit fields of a limit.
func setRefusalHeaders(hdr http.Header, e *apiError) {
	if e.RetryAfter != nil {
		hdr.Set("Retry-After", strconv.FormatInt(*e.RetryAfter, 10))
	}
	if d := e.denial; d != nil && d.Limit > 0 {
		hdr.Set("RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
		hdr.Set("RateLimit-Remaining", strconv.FormatInt(max(0, d.Remaining), 10))
		hdr.Set("RateLimit-Reset", strconv.FormatInt(retrySeconds(time.Until(d.Reset)), 10))
	}
}

// writeError answers with e as JSON, with the headers its status needs.
func writeError(w http.ResponseWriter, e *apiError) {
	setRefusalHeaders(w.Header(), e)
	if e.Code == codeInvalidCode && e.Attempts != nil && e.RetryAfter == nil && e.Support == "" && e.Message == msgInvalidCode {
		writeInvalidCode(w, *e.Attempts)
		return
	}
	writeJSON(w, e.status, e)
}

// The answer to a wrong code, the most frequent refusal.
const (
	codeInvalidCode = "invalid_code"
	msgInvalidCode  = "That code is not right."
)

// invalidCodePrefix is the answer to a wrong code up to its count of
// attempts left, as json.Marshal writes an apiError.
var invalidCodePrefix = func() string {
	b, _ := json.Marshal(apiError{Code: codeInvalidCode, Message: msgInvalidCode})
	return string(b[:len(b)-1]) + `,"attempts_left":`
}()

// writeInvalidCode writes the answer to a wrong code as writeJSON would,
// without reflection.
func writeInvalidCode(w http.ResponseWriter, left int) {
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusBadRequest)
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	buf.Grow(len(invalidCodePrefix) + 24)
	b := buf.AvailableBuffer()
	b = append(b, invalidCodePrefix...)
	b = strconv.AppendInt(b, int64(left), 10)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}

// The values of the headers every JSON answer carries. Each is one value
// with no room after it: a later Add to the header copies rather than
// writes into the shared array, and nothing sets a value in place.
var (
	jsonContentType = []string{"application/json; charset=utf-8"}[:1:1]
	noStore         = []string{"no-store"}[:1:1]
	noSniff         = []string{"nosniff"}[:1:1]
)

// setJSONHeaders sets the headers of a JSON answer. The keys are in
// canonical form, as Set would make them.
func setJSONHeaders(hdr http.Header) {
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	hdr["X-Content-Type-Options"] = noSniff
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	// Marshalled and written at once, with the newline an Encoder adds.
	body, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = w.Write(append(body, '\n'))
}

// writeStarted writes the answer to /start and /resend, startResponse as
// json.Marshal and writeJSON would, without reflection: a flow ID is
// base64url, which JSON needs no escape for.
func writeStarted(w http.ResponseWriter, flow string, expiresIn int64) {
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusAccepted)
	// Gathered in a pooled buffer's array: a writer keeps nothing of what
	// it is given.
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	buf.Grow(len(`{"flow":"","expires_in":}`+"\n") + len(flow) + 20)
	b := buf.AvailableBuffer()
	b = append(b, `{"flow":"`...)
	b = append(b, flow...)
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, expiresIn, 10)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}
