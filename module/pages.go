package module

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/pages"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// The web pages walk a person through the flow with plain HTML forms, so
// that they work with JavaScript off:
//
//	GET  <prefix>/                  the account page
//	POST <prefix>/start             starts a flow, then 303 to <prefix>/?flow=<id>
//	GET  <prefix>/?flow=<id>        the code page (the link in the SMS)
//	POST <prefix>/resend            a new code, then 303 to <prefix>/?flow=<id>&sent=1
//	POST <prefix>/verify            checks the code, keeps the reset token in an
//	                                HttpOnly cookie, then 303 to <prefix>/?step=password
//	GET  <prefix>/?step=password    the new-password page
//	POST <prefix>/reset             forwards the reset and answers the done page
//	GET  <prefix>/?style=<version>  the stylesheet
//
// The form reset sends the upstream the body a JSON reset from a page would
// carry, form-encoded: a single field "password" with the new password,
// signed like every forwarded reset. The reset token never appears in a URL.

// Page and cookie names.
const (
	csrfCookie  = "smsrec_csrf"
	resetCookie = "smsrec_reset"
	csrfField   = "csrf"
	csrfBytes   = 32
)

// hostCookiePrefix starts the names of the pages' cookies when public_url
// is https. A browser keeps a cookie so named only if it is Secure, has
// Path=/ and no Domain (RFC 6265bis §4.1.3.2), and so no sibling subdomain
// and no plain-http page of the host can plant or overwrite one: such a
// page could otherwise fix a person's CSRF token to one it knows, or slip
// in a reset token of its own. The price of Path=/ is that the browser
// sends the cookies to every path of the host while they live (the CSRF
// token for the browser session, the reset token for token_ttl at most):
// they are HttpOnly and SameSite=Strict, and never forwarded to the
// upstream with a reset.
const hostCookiePrefix = "__Host-"

// ownCookies are every name the pages' cookies have had, which a forwarded
// reset never carries: a browser may hold both kinds across a change of
// public_url.
var ownCookies = []string{csrfCookie, resetCookie, hostCookiePrefix + csrfCookie, hostCookiePrefix + resetCookie}

// pageCookies are the names of the pages' cookies and what they are set
// with.
type pageCookies struct {
	csrf, reset string
	path        string
	secure      bool // whatever the request came over: public_url is https
}

// cookiesFor returns the cookies of pages under prefix at publicURL: with
// the __Host- prefix, Secure and Path=/ when it is https, so that they stay
// Secure behind a TLS-terminating proxy; otherwise (http://localhost, say)
// under prefix, Secure only on requests that came over TLS.
func cookiesFor(publicURL, prefix string) pageCookies {
	if u, err := url.Parse(publicURL); err == nil && u.Scheme == "https" {
		return pageCookies{csrf: hostCookiePrefix + csrfCookie, reset: hostCookiePrefix + resetCookie, path: "/", secure: true}
	}
	return pageCookies{csrf: csrfCookie, reset: resetCookie, path: cmp.Or(prefix, "/")}
}

// provisionPages parses the page templates, with any the Templates
// directory replaces, and renders every page once in every language, so
// that a broken template is refused at load.
func (h *Handler) provisionPages() error {
	set, err := pages.New(h.Language, h.Templates)
	if err != nil {
		return err
	}
	h.pages = set
	h.pageRand = rand.Reader
	h.cookieOptions = cookiesFor(h.PublicURL, h.prefix)
	return set.Try(func(lang string) *pages.View { return h.baseView(lang, "trial") })
}

// baseView starts a page in lang with the settings every page shows.
func (h *Handler) baseView(lang, csrf string) *pages.View {
	v := h.pages.View(lang)
	_, styleTag := h.pages.Style()
	v.SiteName = h.SiteName
	v.Support = h.Support
	v.Prefix = h.prefix
	v.Stylesheet = h.prefix + "/?style=" + styleTag
	v.CSRF = csrf
	v.Digits = h.CodeLength
	v.Minutes = int((time.Duration(h.CodeTTL) + time.Minute - 1) / time.Minute)
	v.MinLength = h.PasswordMinLength
	v.Notified = h.NotifyOnReset != nil && *h.NotifyOnReset
	return v
}

// writePage answers with the page v.
func (h *Handler) writePage(w http.ResponseWriter, r *http.Request, v *pages.View) error {
	body, err := h.pages.Render(v)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("rendering %s page: %w", v.Name, err))
	}
	hdr := w.Header()
	pages.SetHeaders(hdr)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", v.Lang)
	hdr.Add("Vary", "Accept-Language")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(v.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// seeOther sends the browser on to target after a form post.
func seeOther(w http.ResponseWriter, r *http.Request, target string) error {
	pages.SetHeaders(w.Header())
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// servePage answers GET <prefix>/: the account page (with the account of
// ?account= filled in), the code page of the
// flow in ?flow=, the new-password page at ?step=password, or the
// stylesheet at ?style=.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Has("style") {
		return h.serveStyle(w, r, q.Get("style"))
	}
	v, err := h.newView(w, r)
	if err != nil {
		return err
	}
	switch {
	case q.Get("step") == "password":
		if _, err := r.Cookie(h.cookieOptions.reset); err != nil {
			return h.problem(w, r, v, h.refusalFor(recovery.ErrInvalidToken), "")
		}
		v.Name = "password"
	case q.Has("flow"):
		v.Name, v.Flow = "code", q.Get("flow")
		if !plausibleID(v.Flow) {
			v.Name, v.Flow, v.Notice = "account", "", "account.notice.badlink"
		} else if q.Get("sent") == "1" {
			v.Notice = "code.notice.resent"
		}
	default:
		v.Name = "account"
		// A link from a login page (the webmail's "Forgot password?")
		// names the account typed there; the field starts with it when it
		// is a name the flow accepts, so that nothing hidden is shown.
		if typed := strings.TrimSpace(q.Get("account")); typed != "" {
			if _, err := recovery.NormalizeAccount(typed); err == nil {
				v.Account = typed
			}
		}
	}
	return h.writePage(w, r, v)
}

// serveStyle answers the stylesheet. Its URL names its version, so the
// current version may be cached for good.
func (h *Handler) serveStyle(w http.ResponseWriter, r *http.Request, version string) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/css; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	style, tag := h.pages.Style()
	if version == tag {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(style)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(style)
	}
	return nil
}

// newView starts a page in the language the browser prefers, with the
// CSRF token of the browser, which it sets when the browser has none.
func (h *Handler) newView(w http.ResponseWriter, r *http.Request) (*pages.View, error) {
	token := h.csrfFromCookie(r)
	if token == "" {
		b := make([]byte, csrfBytes)
		if _, err := io.ReadFull(h.pageRand, b); err != nil {
			return nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("reading randomness: %w", err))
		}
		token = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, h.cookie(r, h.cookieOptions.csrf, token, 0))
	}
	return h.baseView(h.pages.Language(r.Header.Get("Accept-Language")), token), nil
}

// cookie is a cookie that scripts cannot read, sent only with same-site
// requests: below the path prefix, or with the __Host- prefix at / (see
// cookiesFor); over TLS only when public_url is https or the request came
// over TLS. A maxAge of 0 makes a session cookie; below 0 deletes it.
func (h *Handler) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     h.cookieOptions.path,
		MaxAge:   maxAge,
		Secure:   h.cookieOptions.secure || r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
}

// csrfFromCookie returns the browser's CSRF token, or "" if it has none of
// the right shape.
func (h *Handler) csrfFromCookie(r *http.Request) string {
	c, err := r.Cookie(h.cookieOptions.csrf)
	if err != nil || len(c.Value) != base64.RawURLEncoding.EncodedLen(csrfBytes) || !plausibleID(c.Value) {
		return ""
	}
	return c.Value
}

// plausibleID reports whether s has the shape of a random ID: base64url,
// and not so long that it is anything else.
func plausibleID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// serveForm answers a form post from the pages. Every post must carry the
// CSRF token of the browser's cookie; one that does not is refused before
// anything else is done.
//
// A reset whose form carries its own reset_token is not from the pages but
// a client of the API, which SPEC §6 lets send a form: it goes the way of a
// JSON reset. It needs no CSRF check, since it rides on no cookie.
func (h *Handler) serveForm(w http.ResponseWriter, r *http.Request, route string, next caddyhttp.Handler) error {
	raw, rf := readBody(w, r)
	if rf == nil && json.Valid(raw) && bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) {
		// A client of the API that forgot its Content-Type: no page of
		// ours posts JSON, so the answer is the API's, with the fix.
		return h.refuse(w, r, errJSONAsForm)
	}
	var form url.Values
	if rf == nil {
		var err error
		if form, err = url.ParseQuery(string(raw)); err != nil {
			rf = errBadJSON
		}
	}
	if route == "/reset" && form.Has(tokenField) {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		return h.reset(w, r, next)
	}
	v, err := h.newView(w, r)
	if err != nil {
		return err
	}
	switch {
	case route != "/start" && route != "/resend" && route != "/verify" && route != "/reset":
		return h.problem(w, r, v, errNotFound, "")
	case rf != nil:
		return h.problem(w, r, v, rf, "invalid")
	}
	sent := form.Get(csrfField)
	if h.csrfFromCookie(r) == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(v.CSRF)) != 1 {
		return h.problem(w, r, v, errCSRF, "csrf")
	}
	switch route {
	case "/start":
		return h.formStart(w, r, v, form)
	case "/resend":
		return h.formResend(w, r, v, form)
	case "/verify":
		return h.formVerify(w, r, v, form)
	default:
		return h.formReset(w, r, v, form, next)
	}
}

func (h *Handler) formStart(w http.ResponseWriter, r *http.Request, v *pages.View, form url.Values) error {
	v.Account = form.Get("account")
	started, err := h.svc.Start(r.Context(), recovery.StartRequest{
		Account:   v.Account,
		ClientIP:  clientIP(r),
		PublicURL: h.PublicURL, // never the request's Host, which a client chooses
	})
	switch {
	case errors.Is(err, recovery.ErrInvalidRequest):
		v.Name, v.Error = "account", "account.error.empty"
		if typed := strings.TrimSpace(v.Account); typed != "" {
			v.Error = "account.error.invalid"
			// A name refused for its characters is not shown again: it may
			// hold invisible or direction controls that would disguise the
			// field, and sending it back as it is would only fail again.
			if utf8.RuneCountInString(typed) <= recovery.MaxAccountLen {
				v.Account = ""
			}
		}
		return h.refusePage(w, r, v, h.refusalFor(err))
	case err != nil:
		return h.problem(w, r, v, h.refusalFor(err), "")
	}
	return seeOther(w, r, h.prefix+"/?flow="+url.QueryEscape(started.FlowID))
}

func (h *Handler) formResend(w http.ResponseWriter, r *http.Request, v *pages.View, form url.Values) error {
	v.Flow = form.Get("flow")
	if !plausibleID(v.Flow) {
		return h.badLink(w, r, v)
	}
	started, err := h.svc.Resend(r.Context(), v.Flow, clientIP(r))
	var d *recovery.Denial
	switch {
	case errors.As(err, &d) && d.Scope == "resend_interval":
		v.Name, v.Error = "code", "code.error.too_early"
		return h.refusePage(w, r, v, h.refusalFor(err))
	case errors.Is(err, recovery.ErrInvalidRequest):
		return h.badLink(w, r, v)
	case err != nil:
		return h.problem(w, r, v, h.refusalFor(err), "")
	}
	return seeOther(w, r, h.prefix+"/?flow="+url.QueryEscape(started.FlowID)+"&sent=1")
}

func (h *Handler) formVerify(w http.ResponseWriter, r *http.Request, v *pages.View, form url.Values) error {
	v.Flow = form.Get("flow")
	if !plausibleID(v.Flow) {
		return h.badLink(w, r, v)
	}
	verified, err := h.svc.Verify(r.Context(), v.Flow, compactCode(form.Get("code")), clientIP(r))
	var ce *recovery.CodeError
	switch {
	case errors.As(err, &ce):
		v.Name, v.Attempts = "code", ce.AttemptsLeft
		switch ce.AttemptsLeft {
		case 0:
			v.Error = "code.error.wrong_none"
		case 1:
			v.Error = "code.error.wrong_one"
		default:
			v.Error = "code.error.wrong_other"
		}
		return h.refusePage(w, r, v, h.refusalFor(err))
	case errors.Is(err, recovery.ErrInvalidRequest):
		v.Name, v.Error = "code", "code.error.format"
		return h.refusePage(w, r, v, h.refusalFor(err))
	case err != nil:
		return h.problem(w, r, v, h.refusalFor(err), "")
	}
	http.SetCookie(w, h.cookie(r, h.cookieOptions.reset, verified.Token, int(verified.ExpiresIn.Seconds())))
	return seeOther(w, r, h.prefix+"/?step=password")
}

// compactCode drops the spaces and dashes people type or paste inside a
// code; anything else is left for the flow to refuse.
func compactCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\u00a0' {
			return -1
		}
		return r
	}, s)
}

// formReset checks the new password and forwards it with the reset token
// of the browser's cookie. The upstream's answer is not shown: a 2xx gives
// the done page, a 400, 409 or 422 asks for another password, and anything
// else says the mail service is not answering; the token stays valid for
// another try unless the upstream took the reset.
func (h *Handler) formReset(w http.ResponseWriter, r *http.Request, v *pages.View, form url.Values, next caddyhttp.Handler) error {
	c, err := r.Cookie(h.cookieOptions.reset)
	if err != nil {
		return h.problem(w, r, v, h.refusalFor(recovery.ErrInvalidToken), "")
	}
	password := form.Get("password")
	v.Name, v.Status = "password", http.StatusBadRequest
	switch {
	case password != form.Get("password_again"):
		v.Error = "password.error.mismatch"
		return h.writePage(w, r, v)
	case utf8.RuneCountInString(password) < h.PasswordMinLength:
		v.Error = "password.error.short"
		return h.writePage(w, r, v)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	dropCookies(r.Header, ownCookies...)
	body := url.Values{"password": {password}}.Encode()
	answer := &discardWriter{header: make(http.Header)}
	status, nextErr, err := h.forwardReset(answer, r, next, c.Value, []byte(body))
	switch {
	case err != nil:
		return h.problem(w, r, v, h.refusalFor(err), "")
	case nextErr == nil && status >= 200 && status < 300:
		http.SetCookie(w, h.cookie(r, h.cookieOptions.reset, "", -1))
		v.Name, v.Status = "done", http.StatusOK
		return h.writePage(w, r, v)
	case nextErr == nil && (status == http.StatusBadRequest || status == http.StatusConflict || status == http.StatusUnprocessableEntity):
		v.Error, v.Status = "password.error.refused", status
		return h.writePage(w, r, v)
	}
	if nextErr == nil {
		h.logger.Warn("upstream refused the reset from the page", zap.Int("status", status))
	}
	v.Next = h.prefix + "/?step=password"
	return h.problem(w, r, v, errUpstream, "upstream")
}

// dropCookies removes the named cookies from a request's Cookie header and
// keeps the others.
func dropCookies(hdr http.Header, names ...string) {
	r := http.Request{Header: hdr}
	var keep []string
	for _, c := range r.Cookies() {
		if !slices.Contains(names, c.Name) {
			keep = append(keep, c.String())
		}
	}
	hdr.Del("Cookie")
	if len(keep) > 0 {
		hdr.Set("Cookie", strings.Join(keep, "; "))
	}
}

// discardWriter takes the upstream's answer to a reset from a page: the
// status is what matters, and the person gets a page of ours instead.
type discardWriter struct {
	header http.Header
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// badLink answers a form whose flow is not a flow ID: the account page,
// asking to begin again.
func (h *Handler) badLink(w http.ResponseWriter, r *http.Request, v *pages.View) error {
	v.Name, v.Flow, v.Notice = "account", "", "account.notice.badlink"
	return h.refusePage(w, r, v, h.refusalFor(recovery.ErrInvalidRequest))
}
