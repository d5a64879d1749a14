// Package admin holds admin.api.sms_recovery, the routes of Caddy's admin
// endpoint through which support lists and lifts the account locks and IP
// blocks of every sms_recovery gateway running in the process.
package admin

import (
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

// LocksPath is where the admin API serves the locks.
const LocksPath = "/sms-recovery/locks"

// LossPath is where the admin API serves the losses of state that stores
// noticed and that are not acknowledged yet.
const LossPath = "/sms-recovery/store-loss"

// API lets support list and lift account locks and IP blocks through
// Caddy's admin endpoint:
//
//	GET    /sms-recovery/locks                   every lock in force, as JSON
//	DELETE /sms-recovery/locks/account/<account>  lifts the lock and gives fresh tries
//	DELETE /sms-recovery/locks/ip/<ip or /64>     lifts the block and gives fresh tries
//	GET    /sms-recovery/store-loss               losses of state not acknowledged yet
//	DELETE /sms-recovery/store-loss               acknowledges them: recovery works again
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
		{Pattern: LocksPath + "/", Handler: caddy.AdminHandlerFunc(a.lift)},
		{Pattern: LossPath, Handler: caddy.AdminHandlerFunc(a.losses)},
	}
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
// storage, redisepoch.go). It answers 404 when there was nothing to
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
// each ordered by when they end.
func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	locks := []limiter.Lock{}
	for _, e := range gateways.current() {
		for _, kind := range []string{limiter.KindAccount, limiter.KindIP} {
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
	// "account" sorts before "ip"; within a kind, as the store lists them.
	limiter.SortLocks(locks)
	slices.SortStableFunc(locks, func(x, y limiter.Lock) int { return strings.Compare(x.Kind, y.Kind) })
	return writeAdminJSON(w, http.StatusOK, locks)
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
	if r.Method != http.MethodDelete {
		return methodNotAllowed(w, http.MethodDelete)
	}
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
		if kind == limiter.KindAccount {
			ev.Account, ev.Scope = key, limiter.ScopeLockout
		} else {
			ev.ClientIP, ev.Scope = key, limiter.ScopeIPBlock
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
// recovery.NormalizeAccount, an IP address or IPv6 /64 as limiter.ClientKey gives it. The
// key is everything after the kind, so that a /64 needs no escaping.
func lockTarget(u *url.URL) (kind, key string, err error) {
	rest := strings.TrimPrefix(u.EscapedPath(), LocksPath+"/")
	kind, rawKey, _ := strings.Cut(rest, "/")
	if key, err = url.PathUnescape(rawKey); err != nil {
		return "", "", fmt.Errorf("lock key: %w", err)
	}
	switch kind {
	case limiter.KindAccount:
		account, err := recovery.NormalizeAccount(key)
		if err != nil {
			return "", "", err
		}
		return kind, account, nil
	case limiter.KindIP:
		client, err := clientKey(key)
		if err != nil {
			return "", "", err
		}
		return kind, client, nil
	}
	return "", "", fmt.Errorf("unknown lock kind %q (want %s or %s)", kind, limiter.KindAccount, limiter.KindIP)
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
