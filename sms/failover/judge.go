package failover

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// verdict is what a try at one sender means for the message.
type verdict int

const (
	sent       verdict = iota // the sender accepted it
	refused                   // the sender refused the message itself: no other is tried
	failed                    // the sender did not take it: the next one may
	unanswered                // the sender may have taken it: only it may try again
	resting                   // the sender's breaker is open: it was not asked
)

// result is the verdict as a Try reports it.
func (v verdict) result() sms.Result {
	switch v {
	case sent:
		return sms.ResultSent
	case refused:
		return sms.ResultRejected
	case resting:
		return sms.ResultCircuitOpen
	}
	return sms.ResultFailed
}

// refusesUs holds the statuses of a permanent refusal that speaks of the
// gateway at this provider rather than of the message: its key, balance,
// permissions, endpoint, proxy or region. Another provider may well take
// the message.
var refusesUs = map[int]bool{
	http.StatusUnauthorized:       true,
	http.StatusPaymentRequired:    true,
	http.StatusForbidden:          true,
	http.StatusNotFound:           true,
	http.StatusMethodNotAllowed:   true,
	http.StatusProxyAuthRequired:  true,
	http.StatusMisdirectedRequest: true,
}

// judge tells what the error of a try means, given what its HTTP trace
// saw (sendWatch).
func judge(err error, w *sendWatch) verdict {
	if err == nil {
		return sent
	}
	var e *sms.Error
	if !errors.As(err, &e) {
		e = &sms.Error{Err: err} // any other error is worth retrying (sms.Deliverer), and came without an answer
	}
	switch s := e.Status; {
	case e.Permanent && refusesUs[s]:
		return failed
	case e.Permanent:
		return refused
	case w.written() > 1:
		// An HTTP client sends a request again, on a new connection,
		// when the first went out and no answer came back (Go's does so
		// for a request with an Idempotency-Key): whatever the last one
		// was answered, the first may have been taken.
		return unanswered
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500 && s != http.StatusGatewayTimeout:
		return failed // the provider answered that it did not handle the message
	case s == 0 && w.asked.Load() && w.written() == 0:
		return failed // nothing reached the provider
	}
	// A 504 is a proxy's word that the provider did not answer it in time;
	// any other status that is neither a refusal nor a known failure, or no
	// answer to a request that went out or to a try whose requests the
	// trace did not see (a sender that speaks no HTTP, or does not pass the
	// context on), cannot tell whether the provider took the message.
	return unanswered
}

// sendWatch counts, through an HTTP client trace, the requests of a try
// that may have reached the provider whole.
type sendWatch struct {
	asked atomic.Bool  // the try sought a connection for a request
	wrote atomic.Int32 // requests written whole
}

// trace returns ctx with the watch's hooks added to any trace it has. A
// request whose writing failed never reached the provider whole, and
// cannot have been acted on.
func (w *sendWatch) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) { w.asked.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				w.wrote.Add(1)
			}
		},
	})
}

func (w *sendWatch) written() int { return int(w.wrote.Load()) }
