package module

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/pages"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// refusal is a request the gateway turns down: built once, from an outcome
// of the flow (refusalFor) or of the request itself, and answered by the
// JSON API (refuse) or by the pages (refusePage) after the same headers,
// event and placeholders (announce). Its exported fields are the JSON body
// of SPEC §4; it is the error returned to Caddy with handle_errors.
type refusal struct {
	status     int
	Code       string `json:"error"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retry_after,omitempty"` // seconds, 0 for none
	Attempts   *int   `json:"attempts_left,omitempty"`
	Support    string `json:"support,omitempty"`
	// Reference is the support reference of the answer: what a person
	// reads to support, who sees with it what happened (caddy sms-recovery
	// trace). Every refusal has one: its flow's, or one of its own.
	Reference string `json:"reference,omitempty"`

	denial *recovery.Denial // the limit that refused, if one did
	cause  error            // what the flow returned, logged when the fault is ours
}

func newRefusal(status int, code, message string) *refusal {
	return &refusal{status: status, Code: code, Message: message}
}

// Error returns the message of the answer, which is meant for the person
// asking: a site's handle_errors routes show it as {http.error.message}.
func (rf *refusal) Error() string { return rf.Message }

// The refusals of a request the flow never sees. They are shared: nothing
// changes them.
var (
	errTooLarge  = newRefusal(http.StatusRequestEntityTooLarge, "too_large", "The request body is larger than 64 KiB.")
	errBadJSON   = newRefusal(http.StatusBadRequest, "invalid_request", "The request body is not the JSON object this endpoint expects.")
	errMediaType = newRefusal(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the request as application/json.")
	// errJSONAsForm is a JSON body posted as a form: what curl -d sends
	// without -H 'Content-Type: application/json'.
	errJSONAsForm = newRefusal(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"The body is JSON but the request says it is a form: send it with the header Content-Type: application/json.")
	errNotFound = newRefusal(http.StatusNotFound, "not_found", "There is no such recovery endpoint.")
	errMethod   = newRefusal(http.StatusMethodNotAllowed, "method_not_allowed", "This endpoint does not take that method.")
	errUpstream = newRefusal(http.StatusBadGateway, "upstream_unavailable", "The mail service could not be reached. Your reset link is still valid: try again in a minute.")
	// errCSRF is a page's form post without the browser's CSRF token: the
	// pages answer it, never the JSON API.
	errCSRF = newRefusal(http.StatusForbidden, "csrf", "The form has expired. Go back, reload the page and send it again.")
	// errForgedReport is a delivery report whose signature does not hold.
	errForgedReport = newRefusal(http.StatusForbidden, "forged_report", "The delivery report is not signed with a key this gateway knows.")
	errBadReport    = newRefusal(http.StatusBadRequest, "invalid_report", "The delivery report is signed but cannot be read.")
)

// refusalFor maps an outcome of the flow onto its HTTP answer. Statuses are
// chosen here and nowhere else.
func (h *Handler) refusalFor(err error) *refusal {
	var (
		d  *recovery.Denial
		ce *recovery.CodeError
		rf *refusal
	)
	switch {
	case errors.As(err, &ce):
		left := ce.AttemptsLeft
		rf = newRefusal(http.StatusBadRequest, "invalid_code", "That code is not right.")
		rf.Attempts = &left
	case errors.As(err, &d):
		switch {
		case errors.Is(d, recovery.ErrLocked) && d.Permanent:
			rf = newRefusal(http.StatusLocked, "account_locked", "Recovery for this account is locked after too many wrong codes in a row. Support can unlock it.")
			rf.Support = h.Support
		case errors.Is(d, recovery.ErrLocked):
			rf = newRefusal(http.StatusLocked, "account_locked", "Recovery for this account is locked for a while after too many wrong codes.")
			rf.Support = h.Support
		case errors.Is(d, recovery.ErrFull):
			// Rather than forget a lock to make room, the gateway refuses.
			rf = newRefusal(http.StatusServiceUnavailable, "unavailable", "Recovery is busy right now. Try again in a minute.")
		case errors.Is(d, recovery.ErrBlocked):
			rf = newRefusal(http.StatusForbidden, "ip_blocked", "Too many wrong codes came from your network. Try again later.")
		default:
			rf = newRefusal(http.StatusTooManyRequests, "rate_limited", "Too many requests. Wait before trying again.")
		}
		rf.RetryAfter = retrySeconds(d.RetryAfter)
		rf.denial = d
	case errors.Is(err, recovery.ErrInvalidRequest):
		rf = newRefusal(http.StatusBadRequest, "invalid_request", "The account, flow or code is missing or malformed.")
	case errors.Is(err, recovery.ErrExpired):
		rf = newRefusal(http.StatusGone, "expired", "This code has expired or was used up. Start again to get a new one.")
	case errors.Is(err, recovery.ErrInvalidToken):
		rf = newRefusal(http.StatusUnauthorized, "invalid_token", "The reset token is unknown, expired or already used. Start again.")
	case errors.Is(err, recovery.ErrStateLost):
		// The locks and counts that were lost cannot be told from none:
		// until an operator acknowledges the loss, nothing is decided on
		// them, for any account (see storage/redis, epoch.go).
		rf = newRefusal(http.StatusServiceUnavailable, "unavailable",
			"Recovery is paused while its records are checked after a storage failure. Try again later, or contact support.")
		rf.Support = h.Support
		rf.RetryAfter = int64(stateLostRetry / time.Second)
	case errors.Is(err, recovery.ErrInvalidLink):
		rf = newRefusal(http.StatusBadRequest, "invalid_link", "The link is incomplete or was changed. Nothing was locked.")
	case errors.Is(err, recovery.ErrLinkExpired):
		rf = newRefusal(http.StatusGone, "link_expired", "The link has expired. Nothing was locked.")
		rf.Support = h.Support
	case errors.Is(err, recovery.ErrLinkUsed):
		rf = newRefusal(http.StatusGone, "link_used", "The link was used already; each link works once.")
		rf.Support = h.Support
	case errors.Is(err, recovery.ErrUnavailable):
		rf = newRefusal(http.StatusServiceUnavailable, "unavailable", "Recovery is unavailable right now. Try again in a minute.")
		rf.RetryAfter = 30
	default:
		rf = newRefusal(http.StatusInternalServerError, "internal_error", "Something went wrong on our side.")
	}
	rf.cause = err
	rf.Reference = recovery.TraceOf(err)
	return rf
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
// empty when the answer has none. All three are set, the empty ones too,
// so that a route's {http.sms_recovery.scope} never stays as written.
const (
	placeholderError      = "http.sms_recovery.error"
	placeholderRetryAfter = "http.sms_recovery.retry_after"
	placeholderScope      = "http.sms_recovery.scope"
	placeholderReference  = "http.sms_recovery.reference"
)

// announce does what every refusal does before its answer, from the API
// and the pages alike: it sets the headers the status needs (Retry-After,
// the RateLimit fields of a limit), logs and counts a failure of ours,
// and sets the placeholders in the replacer Caddy's server puts in every
// request's context. The security event, if any, was emitted by the flow
// when it refused.
func (h *Handler) announce(w http.ResponseWriter, r *http.Request, rf *refusal) {
	hdr := w.Header()
	retry, scope := "", ""
	if rf.RetryAfter > 0 {
		retry = strconv.FormatInt(rf.RetryAfter, 10)
		hdr.Set("Retry-After", retry)
	}
	if d := rf.denial; d != nil {
		scope = d.Scope
		if d.Limit > 0 {
			hdr.Set("RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
			hdr.Set("RateLimit-Remaining", strconv.FormatInt(max(0, d.Remaining), 10))
			hdr.Set("RateLimit-Reset", strconv.FormatInt(retrySeconds(time.Until(d.Reset)), 10))
		}
	}
	if rf.cause != nil && rf.status >= 500 {
		h.outageLogger.Error("recovery request failed", zap.String("path", r.URL.Path), zap.Error(rf.cause))
	}
	if errors.Is(rf.cause, recovery.ErrUnavailable) {
		h.observer.unavailable()
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(placeholderError, rf.Code)
		repl.Set(placeholderRetryAfter, retry)
		repl.Set(placeholderScope, scope)
		repl.Set(placeholderReference, rf.Reference)
	}
	h.traceRefusal(r, rf)
}

// refuse answers a refusal of the JSON API as Caddy's own handlers do:
// after announce, it writes rf as JSON or, with handle_errors, returns it
// as a caddyhttp.Error for the site's handle_errors routes to answer.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, rf *refusal) error {
	rf = h.referenced(r, rf)
	h.announce(w, r, rf)
	if h.HandleErrors {
		w.Header()["Cache-Control"] = noStore
		return caddyhttp.Error(rf.status, rf)
	}
	writeJSON(w, rf.status, rf)
	return nil
}

// fail answers an outcome of the flow that is not a success.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) error {
	return h.refuse(w, r, h.refusalFor(err))
}

// refusePage answers a refusal of a page's form post with the page v,
// which says what went wrong: after announce, with the refusal's status
// and wait. The pages answer their refusals themselves, handle_errors or
// not.
func (h *Handler) refusePage(w http.ResponseWriter, r *http.Request, v *pages.View, rf *refusal) error {
	rf = h.referenced(r, rf)
	h.announce(w, r, rf)
	v.Status, v.RetryAfter, v.Reference = rf.status, rf.RetryAfter, rf.Reference
	return h.writePage(w, r, v)
}

// problem answers rf with the problem page in state, or in the state of
// rf's code if state is "". Its link leads to v.Next, or else to the
// start.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, v *pages.View, rf *refusal, state string) error {
	if state == "" {
		state = pages.ProblemOf(rf.Code)
	}
	v.Name, v.State, v.Error = "problem", state, ""
	if v.Next == "" {
		v.Next = h.prefix + "/"
	}
	return h.refusePage(w, r, v, rf)
}

// The values of the headers every JSON answer carries, shared rather than
// made for each answer. Each is one value with no room after it: a later
// Add to the header copies rather than writes into the shared array, and
// nothing sets a value in place.
var (
	jsonContentType = []string{"application/json; charset=utf-8"}[:1:1]
	noStore         = []string{"no-store"}[:1:1]
	noSniff         = []string{"nosniff"}[:1:1]
)

// writeJSON answers with v as JSON. The header keys are in canonical form,
// as Set would make them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	hdr["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
