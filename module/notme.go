package module

import (
	"crypto/subtle"
	"net/http"
	"net/url"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// The "this wasn't me" link of a reset notice:
//
//	GET  <prefix>/not-me?t=<token>   the page that asks to confirm; it locks nothing,
//	                                 since mail scanners follow links
//	POST <prefix>/not-me             t and csrf in a form from that page: locks the
//	                                 account's recovery until support lifts it
//
// A forged or altered token is answered 400, an expired or used one 410,
// each with a page that says so; none changes anything.
func (h *Handler) serveNotMe(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.notMePage(w, r)
	case http.MethodPost:
		if !isForm(r) {
			return h.refuse(w, r, errMediaType)
		}
		return h.notMeConfirm(w, r)
	}
	w.Header().Set("Allow", "GET, HEAD, POST")
	return h.refuse(w, r, errMethod)
}

// notMePage shows the account, masked, and the button that locks it.
func (h *Handler) notMePage(w http.ResponseWriter, r *http.Request) error {
	v, err := h.newView(w, r)
	if err != nil {
		return err
	}
	token := r.URL.Query().Get("t")
	n, err := h.svc.CheckNotMe(r.Context(), token)
	if err != nil {
		return h.problem(w, r, v, h.refusalFor(err), "")
	}
	v.Name, v.Link, v.Account = "notme", token, recovery.MaskAccount(n.Account)
	return h.writePage(w, r, v)
}

// notMeConfirm locks the account of the form's token, once.
func (h *Handler) notMeConfirm(w http.ResponseWriter, r *http.Request) error {
	raw, rf := readBody(w, r)
	v, err := h.newView(w, r)
	if err != nil {
		return err
	}
	if rf != nil {
		return h.problem(w, r, v, rf, "invalid")
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return h.problem(w, r, v, errBadJSON, "invalid")
	}
	if h.csrfFromCookie(r) == "" || subtle.ConstantTimeCompare([]byte(form.Get(csrfField)), []byte(v.CSRF)) != 1 {
		return h.problem(w, r, v, errCSRF, "csrf")
	}
	d, err := h.svc.Dispute(r.Context(), form.Get("t"), clientIP(r))
	if err != nil {
		return h.problem(w, r, v, h.refusalFor(err), "")
	}
	v.Name, v.Notice, v.Account = "notme", "notme.done.body", recovery.MaskAccount(d.Account)
	return h.writePage(w, r, v)
}
