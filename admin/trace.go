package admin

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

// TracePath is where the admin API serves support's trails:
// GET TracePath/<reference>.
const TracePath = "/sms-recovery/trace"

// Trace is the answer to GET TracePath/<reference>: the reference as the
// gateway writes it and its trail, oldest first, from every store in the
// process. Client addresses are masked and accounts left out unless the
// request asks for them in clear with ?clear=1; the account is there only
// where the gateway logs accounts in clear (log_accounts clear). A phone
// number is masked always; a code, a token or a password is never there.
type Trace struct {
	Reference string               `json:"reference"`
	Entries   []storage.TrailEntry `json:"entries"`
}

// errNoTrail is the one answer to a reference no store holds, forged or
// expired alike.
var errNoTrail = map[string]string{"error": "no trail for this reference: it is mistyped, expired, or was never given"}

// trailFlusher is a gateway's observer that writes its trails off the
// request path: FlushTrails returns once what it queued is written.
type trailFlusher interface {
	FlushTrails(ctx context.Context) error
}

// trace answers GET TracePath/<reference>.
func (a *API) trace(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	inClear, err := clearParam(r.URL.Query())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	ref, err := recovery.ParseTraceRef(strings.TrimPrefix(r.URL.Path, TracePath+"/"))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: errors.New("a support reference is ten letters and digits, such as K7QMX-2XD9T")}
	}
	out := Trace{Reference: ref, Entries: []storage.TrailEntry{}}
	var failed error // of a store that could not answer
	// Gateways with different settings on one server read the same trail:
	// what a store before gave is not given again.
	seen := map[storage.TrailEntry]bool{}
	for _, e := range gateways.current() {
		if e.trails == nil {
			continue
		}
		// What this process has seen and not yet written is read too.
		if f, ok := e.observer.(trailFlusher); ok {
			_ = f.FlushTrails(r.Context())
		}
		entries, err := e.trails.Trail(r.Context(), ref)
		if err != nil && !gateways.holds(e) {
			continue // unloaded meanwhile
		}
		if err != nil {
			failed = err
			continue
		}
		for _, te := range entries {
			if !seen[te] {
				out.Entries = append(out.Entries, te)
			}
		}
		for _, te := range entries {
			seen[te] = true
		}
	}
	// A reference is in one store; a store that cannot answer may hold it,
	// so its failure is the answer only when no other store has it.
	if len(out.Entries) == 0 && failed != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: failed}
	}
	if len(out.Entries) == 0 {
		return writeAdminJSON(w, http.StatusNotFound, errNoTrail)
	}
	slices.SortStableFunc(out.Entries, func(x, y storage.TrailEntry) int { return cmp.Compare(x.At.UnixNano(), y.At.UnixNano()) })
	if !inClear {
		for i := range out.Entries {
			e := &out.Entries[i]
			e.Account = ""
			if e.ClientIP != "" {
				e.ClientIP = recovery.MaskClient(e.ClientIP)
			}
		}
	}
	return writeAdminJSON(w, http.StatusOK, out)
}
