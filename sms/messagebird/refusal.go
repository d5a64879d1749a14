package messagebird

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	mbapi "github.com/messagebird/go-rest-api/v9"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// maxAnswer bounds the part of an answer that is read: an error body, or
// the message the platform API accepted.
const maxAnswer = 64 << 10

// answer is what an API said to a request: its status and headers, and
// its body when it did not accept the message.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorBody is an error answer of either API. The legacy REST API answers
// {"errors": [{"code": 2, "description": "…", "parameter": "access_key"}]};
// the platform API {"error": {"type": "auth_error", "code": "E01001",
// "message": "…", "param": "…"}}. Which of the two came tells which API
// the endpoint is.
type errorBody struct {
	Errors []struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
		Parameter   string `json:"parameter"`
	} `json:"errors"`
	Error *struct {
		Code    string `json:"code"` // E and five digits
		Message string `json:"message"`
		Param   string `json:"param"`
	} `json:"error"`
}

// refusal turns an answer that did not accept m into an *sms.Error:
// retryable for 408, 429 and 5xx, with their Retry-After; permanent
// otherwise, with the provider's code, parameter and words, and, when it
// refused the key, what to change.
func (mb *MessageBird) refusal(a answer, m recovery.Message) *sms.Error {
	e := &sms.Error{Provider: provider, Status: a.status}
	if a.status >= 200 && a.status <= 299 {
		// Accepted, but the answer could not be read. Sending again could
		// text the person twice, so it is not retried.
		e.Permanent, e.Err = true, errors.New("unreadable answer")
		return e
	}
	var body errorBody
	_ = json.Unmarshal(a.body, &body) // a page from a proxy says nothing more than its status
	fromLegacy, fromPlatform := len(body.Errors) > 0, body.Error != nil
	switch {
	case fromLegacy:
		first := body.Errors[0]
		e.Code, e.Parameter, e.Detail = first.Code, first.Parameter, scrub(first.Description, m, mb.AccessKey)
	case fromPlatform:
		// Bird's E01001 is code 1001.
		e.Code, _ = strconv.Atoi(strings.TrimPrefix(body.Error.Code, "E"))
		e.Parameter, e.Detail = body.Error.Param, scrub(body.Error.Message, m, mb.AccessKey)
	}
	if a.status >= 500 || a.status == http.StatusTooManyRequests || a.status == http.StatusRequestTimeout {
		// The provider failed, or did not handle the request: worth
		// another try, once the wait it asked for is over.
		e.RetryAfter = retryAfter(a.header)
		return e
	}
	e.Permanent = true
	if hint := mb.hint(a.status, fromLegacy, fromPlatform); hint != "" {
		e.Err = errors.New(hint)
	}
	return e
}

// hint says what to change when an API refused the key: most often a key
// of one generation sent to the other's API. fromLegacy and fromPlatform
// tell which API the answer's shape came from.
func (mb *MessageBird) hint(status int, fromLegacy, fromPlatform bool) string {
	r := mb.region
	switch {
	case status == http.StatusUnauthorized && r == "" && fromPlatform:
		return "the endpoint answered as Bird's platform API, which takes only keys of the form bk_<region>_…: " +
			"a MessageBird access key goes to " + mbapi.Endpoint + "; leave endpoint out or point it there"
	case status == http.StatusUnauthorized && r == "":
		return "MessageBird refused the access key: set access_key to a live MessageBird access key, which works " +
			"only at " + mbapi.Endpoint + ", or to a whole key from Bird's current dashboard, of the form " +
			"bk_<region>_…, which goes to Bird's platform API"
	case status == http.StatusUnauthorized && fromLegacy:
		return fmt.Sprintf("the endpoint answered as MessageBird's legacy REST API, which refuses Bird platform keys: "+
			"a bk_%s_… key goes to %s; leave endpoint out or point it there", r, platformEndpoint(r))
	case status == http.StatusUnauthorized:
		return fmt.Sprintf("Bird refused the key: a bk_%s_… key works only at %s, and only while it is live; "+
			"a MessageBird access key, without the bk_ prefix, goes to %s: set access_key to a live key of either kind",
			r, platformEndpoint(r), mbapi.Endpoint)
	case status == http.StatusMisdirectedRequest && r != "":
		return fmt.Sprintf("a bk_%s_… key works only at %s: leave endpoint out or point it there", r, platformEndpoint(r))
	case status == http.StatusForbidden && r != "":
		return "give the key permission to send SMS in Bird's dashboard"
	}
	return ""
}

// maxRetryAfter bounds the wait a provider may ask for; the queue gives up
// on a message that would expire first anyway.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header, in seconds or as a date; 0 when
// there is none or it cannot be read.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		// A date is measured from the answer's own Date, so that a clock
		// set apart from the provider's neither stretches nor skips the wait.
		now, err := http.ParseTime(h.Get("Date"))
		if err != nil {
			now = time.Now()
		}
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// maxDetail bounds the provider's words kept in an error, in bytes.
const maxDetail = 200

var (
	digitRun    = regexp.MustCompile(`\+?[0-9]{6,}`)
	platformKey = regexp.MustCompile(`bk_([a-z]{2}[0-9]+)_[A-Za-z0-9_-]+`)
)

// scrub makes what a provider said about m fit for a log line: the key,
// any platform key, the recipient's number (masked), the words of m's text
// that hold more than letters (the code, the link), and any other run of
// six digits or more are taken out; control characters become spaces, a
// final full stop goes; and it is cut to maxDetail bytes.
func scrub(s string, m recovery.Message, key string) string {
	if key != "" {
		s = strings.ReplaceAll(s, key, "<access_key>")
	}
	s = platformKey.ReplaceAllString(s, "bk_${1}_…")
	if msisdn := strings.TrimPrefix(m.To, "+"); msisdn != "" {
		masked := cmp.Or(m.Masked, recovery.MaskPhone(m.To))
		s = strings.ReplaceAll(strings.ReplaceAll(s, "+"+msisdn, masked), msisdn, masked)
	}
	for _, w := range strings.Fields(m.Body) {
		if len(w) >= 6 && strings.ContainsFunc(w, func(r rune) bool { return !unicode.IsLetter(r) }) {
			s = strings.ReplaceAll(s, w, "…")
		}
	}
	s = digitRun.ReplaceAllString(s, "…")
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	s = strings.TrimSuffix(s, ".") // the error goes on after it
	if len(s) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
