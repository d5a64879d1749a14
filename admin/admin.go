// Package admin holds admin.api.sms_recovery, the routes of Caddy's admin
// endpoint through which support lists and lifts the account locks, IP
// blocks and destination prefix blocks of every sms_recovery gateway
// running in the process, and locks an account's recovery.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

func init() {
	caddy.RegisterModule(API{})
}

// EventLockLifted is the security event of a lock lifted through the admin
// API. Its Caddy event is sms_recovery_lock_lifted.
const EventLockLifted = "lock_lifted"

// EventLockImposed is the security event of a lock imposed on an account's
// recovery through the admin API. Its Caddy event is
// sms_recovery_lock_imposed.
const EventLockImposed = "lock_imposed"

// LocksPath is where the admin API serves the locks.
const LocksPath = "/sms-recovery/locks"

// LossPath is where the admin API serves the losses of state that stores
// noticed and that are not acknowledged yet.
const LossPath = "/sms-recovery/store-loss"

// API lets support list and lift account locks, IP blocks and prefix
// blocks, and lock an account's recovery, through Caddy's admin endpoint:
//
//	GET    /sms-recovery/locks[?clear=1]          every lock in force, as JSON; accounts
//	                                              and addresses masked unless clear
//	PUT    /sms-recovery/locks/account/<account>[?for=<duration>]
//	                                              locks the account's recovery, until
//	                                              lifted unless for is given
//	DELETE /sms-recovery/locks/account/<account>  lifts the lock and gives fresh tries
//	DELETE /sms-recovery/locks/ip/<ip or /64>     lifts the block and gives fresh tries
//	DELETE /sms-recovery/locks/prefix/<+prefix>   lifts the block of a destination prefix;
//	                                              its next block is a first one again
//	GET    /sms-recovery/store-loss               losses of state not acknowledged yet
//	DELETE /sms-recovery/store-loss               acknowledges them: recovery works again
//	GET    /sms-recovery/trace/<reference>[?clear=1]
//	                                              what happened under a support reference,
//	                                              oldest first; addresses masked unless clear
//
// Caddy loads every admin.api module it knows of, so this needs no
// configuration: it is on wherever the admin endpoint is. It sees the locks
// of every sms_recovery handler running in the process, once per storage.
type API struct{}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sms_recovery",
		New: func() caddy.Module { return new(API) },
	}
}

// Routes returns the routes of the admin API.
func (a *API) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: LocksPath, Handler: caddy.AdminHandlerFunc(a.list)},
		{Pattern: LocksPath + "/", Handler: caddy.AdminHandlerFunc(a.lock)},
		{Pattern: LossPath, Handler: caddy.AdminHandlerFunc(a.losses)},
		{Pattern: TracePath + "/", Handler: caddy.AdminHandlerFunc(a.trace)},
	}
}

// lock answers the requests on one lock: PUT imposes it, DELETE lifts it.
func (a *API) lock(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodPut:
		return a.impose(w, r)
	case http.MethodDelete:
		return a.lift(w, r)
	}
	return methodNotAllowed(w, "PUT, DELETE")
}

// lossList is the answer to GET LossPath: the losses of state that the
// stores in this process noticed and that no one acknowledged yet.
type lossList struct {
	Lost []storage.Loss `json:"lost"`
}

// acknowledged is the answer to DELETE LossPath.
type acknowledged struct {
	Acknowledged int `json:"acknowledged"`
}

// losses answers GET LossPath with the losses not acknowledged yet, and
// DELETE LossPath by acknowledging them in every store whose server holds
// one: the operator's word that the state the server has now is to be
// trusted. Until then the recovery routes answer 503 (see package
// storage/redis, epoch.go). It answers 404 when there was nothing to
// acknowledge.
func (a *API) losses(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		out := lossList{Lost: []storage.Loss{}}
		for _, e := range gateways.current() {
			if e.losses == nil {
				continue
			}
			if l, lost := e.losses.StateLoss(); lost {
				out.Lost = append(out.Lost, l)
			}
		}
		return writeAdminJSON(w, http.StatusOK, out)
	case http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, DELETE")
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed; use GET or DELETE")}
	}
	by := requester(r)
	n := 0
	for _, e := range gateways.current() {
		if e.losses == nil {
			continue
		}
		ok, err := e.losses.AcknowledgeLoss(r.Context())
		if err != nil && !gateways.holds(e) {
			continue // unloaded meanwhile
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		if !ok {
			continue
		}
		n++
		if e.observer != nil {
			e.observer.Observe(r.Context(), recovery.Event{Name: storage.AlarmLossAcknowledged,
				Reason: "acknowledged through the admin API by " + by})
		}
	}
	if n == 0 {
		return writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no loss of state to acknowledge"})
	}
	return writeAdminJSON(w, http.StatusOK, acknowledged{Acknowledged: n})
}

// list answers every lock in force: account locks first, then IP blocks,
// then prefix blocks, each ordered by when they end. Accounts and client
// addresses are masked (recovery.MaskAccount, recovery.MaskClient) unless
// the request asks for them in clear with ?clear=1: a listing shown on a
// screen or pasted into a ticket names no one unless support needs the
// names. A destination prefix names no one, and is never masked.
func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	inClear, err := clearParam(r.URL.Query())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	locks := []recovery.Lock{}
	for _, e := range gateways.current() {
		for _, kind := range []string{recovery.KindAccount, recovery.KindIP, recovery.KindPrefix} {
			l, err := e.guard.Locks(r.Context(), kind)
			if err != nil && !gateways.holds(e) {
				break // unloaded meanwhile: nothing of it to list
			}
			if err != nil {
				return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
			}
			locks = append(locks, l...)
		}
	}
	// "account" sorts before "ip", and "ip" before "prefix"; within a
	// kind, as the store lists them.
	limiter.SortLocks(locks)
	slices.SortStableFunc(locks, func(x, y recovery.Lock) int { return strings.Compare(x.Kind, y.Kind) })
	if !inClear {
		for i := range locks {
			locks[i].Key = maskKey(locks[i].Kind, locks[i].Key)
		}
	}
	return writeAdminJSON(w, http.StatusOK, locks)
}

// clearParam reads ?clear: absent or false masks the listing; present
// without a value, or true, shows it in clear.
func clearParam(q url.Values) (bool, error) {
	if !q.Has("clear") {
		return false, nil
	}
	v := q.Get("clear")
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("clear: %q is neither true nor false", v)
	}
	return b, nil
}

// maskKey masks the key of a lock of kind for a listing.
func maskKey(kind, key string) string {
	switch kind {
	case recovery.KindIP:
		return recovery.MaskClient(key)
	case recovery.KindPrefix:
		return key
	}
	return recovery.MaskAccount(key)
}

// imposeResult is the answer to an imposed lock: the account, normalised,
// and when the lock ends, or that support lifts it.
type imposeResult struct {
	Kind      string    `json:"kind"`
	Key       string    `json:"key"`
	Until     time.Time `json:"until,omitzero"`
	Permanent bool      `json:"permanent,omitempty"`
	Reference string    `json:"reference,omitempty"` // the support reference of the lock and its notice
}

// minImposed is the shortest lock support may impose: anything shorter is
// a typing slip, not a decision.
const minImposed = time.Second

// impose answers PUT <LocksPath>/account/<account>[?for=<duration>]. It
// locks the account's recovery in every storage, for the duration or
// until support lifts it, as a lockout locks it: every route of the
// account answers 423 and a lift ends it. A lock in force is never
// shortened. Where the lock is new, the account's phone gets one notice,
// through the first gateway whose directory has a phone for it: a second
// call finds the lock in force and sends nothing. The answer is the same
// whether or not the directory knows the account.
func (a *API) impose(w http.ResponseWriter, r *http.Request) error {
	kind, key, err := lockTarget(r.URL)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if kind != recovery.KindAccount {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: fmt.Errorf("support locks accounts only: PUT %s/%s/<account>", LocksPath, recovery.KindAccount)}
	}
	d, err := forParam(r.URL.Query())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	// Once begun, the locks and the notice are made even if the caller
	// goes away: a retry would find the locks in force and tell no one.
	ctx := context.WithoutCancel(r.Context())
	how := "until lifted"
	if d > 0 {
		how = "for " + d.String()
	}
	// The lock and its notice are filed under a support reference of their
	// own, which the notice gives the account's owner.
	ref, err := recovery.NewTraceRef(rand.Reader)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	ev := recovery.Event{Name: EventLockImposed, Account: key, Scope: limiter.ScopeLockout, Trace: ref,
		Reason: "imposed through the admin API by " + requester(r) + ", " + how}
	res := imposeResult{Kind: kind, Key: key, Permanent: true, Reference: ref}
	locked := false
	var fresh []*guardEntry // where the lock is new
	for _, e := range gateways.current() {
		l, set, err := e.guard.Impose(ctx, key, d)
		if err != nil && !gateways.holds(e) {
			continue // unloaded meanwhile: nothing of it to lock
		}
		if errors.Is(err, recovery.ErrFull) {
			w.Header().Set("Retry-After", "60")
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable,
				Err: fmt.Errorf("the storage has no room for another lock now: %w", err)}
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		locked = true
		if !l.Permanent {
			res.Permanent = false
			if res.Until.IsZero() || l.Until.Before(res.Until) {
				res.Until = l.Until
			}
		}
		if e.observer != nil {
			e.observer.Observe(ctx, ev)
		}
		if set {
			fresh = append(fresh, e)
		}
	}
	if !locked {
		return writeAdminJSON(w, http.StatusNotFound, map[string]string{
			"error": "no sms_recovery handler runs in this process: nothing to lock",
		})
	}
	for _, e := range fresh {
		if e.notifier != nil && e.notifier.NotifyImposedLock(ctx, key, recovery.Event{Account: key, Reason: ev.Reason, Trace: ref}) {
			break
		}
	}
	return writeAdminJSON(w, http.StatusOK, res)
}

// forParam reads ?for, the length of an imposed lock in Caddy's duration
// syntax (30m, 24h, 7d); absent, the lock holds until support lifts it.
func forParam(q url.Values) (time.Duration, error) {
	if !q.Has("for") {
		return 0, nil
	}
	v := q.Get("for")
	d, err := caddy.ParseDuration(v)
	if err != nil || d < minImposed {
		return 0, fmt.Errorf("for: %q is not a duration of at least %s (such as 30m, 24h or 7d); leave it out for a lock until support lifts it", v, minImposed)
	}
	return d, nil
}

// liftResult is the answer to a lifted lock: its kind and normalised key.
type liftResult struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
}

// lift answers DELETE <LocksPath>/<kind>/<key>. It lifts the lock in
// every storage and resets the failure count even where there was no lock,
// so a person close to a lockout also gets a fresh set of tries; it answers
// 404 when no storage had the lock.
func (a *API) lift(w http.ResponseWriter, r *http.Request) error {
	kind, key, err := lockTarget(r.URL)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	by := requester(r)
	lifted := false
	for _, e := range gateways.current() {
		ok, err := e.guard.Lift(r.Context(), kind, key)
		if err != nil && !gateways.holds(e) {
			continue // unloaded meanwhile: nothing of it to lift
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		if !ok {
			continue
		}
		lifted = true
		ev := recovery.Event{Name: EventLockLifted, Reason: "lifted through the admin API by " + by}
		switch kind {
		case recovery.KindAccount:
			ev.Account, ev.Scope = key, limiter.ScopeLockout
		case recovery.KindIP:
			ev.ClientIP, ev.Scope = key, limiter.ScopeIPBlock
		default:
			ev.Prefix, ev.Scope = key, limiter.ScopeBreaker
		}
		e.observer.Observe(r.Context(), ev)
	}
	if !lifted {
		// Written here rather than returned: Caddy logs the errors of admin
		// routes as errors, and nothing to lift is an answer, not a fault.
		return writeAdminJSON(w, http.StatusNotFound, map[string]string{
			"error": fmt.Sprintf("no %s lock on %q to lift", kind, key),
		})
	}
	return writeAdminJSON(w, http.StatusOK, liftResult{Kind: kind, Key: key})
}

// lockTarget reads the kind and the key of a lock from the path below
// LocksPath, normalised as the guard keys them: an account by
// recovery.NormalizeAccount, an IP address or IPv6 /64 as limiter.ClientKey gives it,
// a destination prefix as "+" and digits. The key is everything after the
// kind, so that a /64 needs no escaping.
func lockTarget(u *url.URL) (kind, key string, err error) {
	rest := strings.TrimPrefix(u.EscapedPath(), LocksPath+"/")
	kind, rawKey, _ := strings.Cut(rest, "/")
	if key, err = url.PathUnescape(rawKey); err != nil {
		return "", "", fmt.Errorf("lock key: %w", err)
	}
	switch kind {
	case recovery.KindAccount:
		account, err := recovery.NormalizeAccount(key)
		if err != nil {
			return "", "", err
		}
		return kind, account, nil
	case recovery.KindIP:
		client, err := clientKey(key)
		if err != nil {
			return "", "", err
		}
		return kind, client, nil
	case recovery.KindPrefix:
		prefix, err := prefixKey(key)
		if err != nil {
			return "", "", err
		}
		return kind, prefix, nil
	}
	return "", "", fmt.Errorf("unknown lock kind %q (want %s, %s or %s)", kind, recovery.KindAccount, recovery.KindIP, recovery.KindPrefix)
}

// prefixKey reads a destination prefix as the breaker keys it: "+" and
// its digits, such as +447400. Spaces, as people write numbers, are
// dropped; the "+" may be left out.
func prefixKey(s string) (string, error) {
	digits := strings.TrimPrefix(strings.ReplaceAll(s, " ", ""), "+")
	if digits == "" || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" {
		return "", fmt.Errorf("prefix: %q is not a destination prefix such as +447400", s)
	}
	return "+" + digits, nil
}

// clientKey parses an IP address or an IPv6 /64 into the key the guard
// blocks it under.
func clientKey(s string) (string, error) {
	if _, err := netip.ParseAddr(s); err == nil {
		return limiter.ClientKey(s), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 64 {
		return "", fmt.Errorf("ip: %q is neither an IP address nor an IPv6 /64", s)
	}
	return p.Masked().String(), nil
}

// requester names who asked, for the audit trail: the subject of the client
// certificate on a remote admin endpoint, else the remote address.
func requester(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return "certificate " + strconv.Quote(r.TLS.PeerCertificates[0].Subject.String())
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        fmt.Errorf("method not allowed; use %s", allow),
	}
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.Module      = (*API)(nil)
	_ caddy.AdminRouter = (*API)(nil)
)
