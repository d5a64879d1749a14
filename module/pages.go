package module

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

//go:embed pages
var pageFiles embed.FS

// Page and cookie names.
const (
	csrfCookie  = "smsrec_csrf"
	resetCookie = "smsrec_reset"
	csrfField   = "csrf"
	csrfBytes   = 32
)

// pageNames are the templates a Templates directory may replace, besides
// the layout every page is drawn in.
var pageNames = []string{"account", "code", "password", "done", "problem"}

// problemStates are the states the problem page explains.
var problemStates = []string{
	"rate_limited", "locked", "blocked", "expired", "token",
	"upstream", "unavailable", "csrf", "invalid", "error",
}

// problemOfCode is the problem state of an error code of the API; other
// codes are "error".
var problemOfCode = map[string]string{
	"rate_limited":    "rate_limited",
	"account_locked":  "locked",
	"ip_blocked":      "blocked",
	"expired":         "expired",
	"invalid_token":   "token",
	"unavailable":     "unavailable",
	"invalid_request": "invalid",
}

// pages is the provisioned state of the web pages.
type pages struct {
	templates   map[string]*template.Template // by page name
	texts       map[string]map[string]string  // by language, then text key
	defaultLang string
	style       []byte
	styleTag    string // version of the stylesheet, for its URL
	rand        io.Reader
	// secure makes every cookie Secure: public_url is https, so people
	// reach the pages over TLS even where Caddy sees plain HTTP behind a
	// load balancer that terminates it.
	secure bool
}

// provisionPages parses the page templates, with any the Templates directory
// replaces, and the texts, and renders every page once in every language so
// that a broken template is refused at load rather than shown to a person.
func (h *Handler) provisionPages() error {
	p := &pages{rand: rand.Reader, defaultLang: primaryLang(h.Language)}
	if u, err := url.Parse(h.PublicURL); err == nil && u.Scheme == "https" {
		p.secure = true
	}
	var err error
	if p.texts, err = loadTexts(); err != nil {
		return err
	}
	if _, ok := p.texts[p.defaultLang]; !ok {
		return fmt.Errorf("language: no page texts for %q (have %s)", h.Language, strings.Join(slices.Sorted(maps.Keys(p.texts)), ", "))
	}
	if p.style, err = pageFiles.ReadFile("pages/style.css"); err != nil {
		return fmt.Errorf("reading stylesheet: %w", err)
	}
	sum := sha256.Sum256(p.style)
	p.styleTag = hex.EncodeToString(sum[:6])
	sources, err := templateSources(h.Templates)
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	p.templates = make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Parse(sources["layout"])
		if err == nil {
			_, err = t.New(name + ".html").Parse(sources[name])
		}
		if err != nil {
			return fmt.Errorf("templates: %w", err)
		}
		p.templates[name] = t
	}
	h.pages = p
	return h.tryPages()
}

// loadTexts reads the built-in texts, one JSON file per language.
func loadTexts() (map[string]map[string]string, error) {
	files, err := fs.Glob(pageFiles, "pages/lang/*.json")
	if err != nil {
		return nil, err
	}
	texts := make(map[string]map[string]string, len(files))
	for _, f := range files {
		b, err := pageFiles.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading page texts: %w", err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("reading page texts %s: %w", path.Base(f), err)
		}
		texts[strings.TrimSuffix(path.Base(f), ".json")] = m
	}
	return texts, nil
}

// templateSources returns the source of the layout and of every page: the
// built-in one, or the file of the same name in dir. A file in dir that
// replaces nothing is refused, so that a misspelt name does not go unseen.
func templateSources(dir string) (map[string]string, error) {
	src := make(map[string]string, len(pageNames)+1)
	for _, name := range append([]string{"layout"}, pageNames...) {
		b, err := pageFiles.ReadFile("pages/" + name + ".html")
		if err != nil {
			return nil, err
		}
		src[name] = string(b)
	}
	if dir == "" {
		return src, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".html")
		if _, ok := src[name]; !ok {
			return nil, fmt.Errorf("%s does not replace a built-in template (layout.html, %s.html)", f, strings.Join(pageNames, ".html, "))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		src[name] = string(b)
	}
	return src, nil
}

// tryPages renders every page in every language, with and without a
// message, and every problem state.
func (h *Handler) tryPages() error {
	messages := map[string][2]string{ // error and notice keys each page may show
		"account":  {"account.error.empty", "account.notice.badlink"},
		"code":     {"code.error.wrong_other", "code.notice.resent"},
		"password": {"password.error.mismatch", ""},
	}
	for lang := range h.pages.texts {
		for _, name := range pageNames {
			states := []string{""}
			if name == "problem" {
				states = problemStates
			}
			for _, state := range states {
				for _, withMessage := range []bool{false, true} {
					v := h.baseView(lang, "trial")
					v.Name, v.State, v.Next, v.retryAfter, v.Attempts = name, state, "/", 90, 2
					if withMessage {
						v.Error, v.Notice = messages[name][0], messages[name][1]
					}
					if _, err := h.pages.render(v); err != nil {
						return fmt.Errorf("templates: %s.html in %q: %w", name, lang, err)
					}
				}
			}
		}
	}
	return nil
}

// view is what a page template sees. Error and Notice hold text keys,
// shown with T.
type view struct {
	Name       string // the page: account, code, password, done or problem
	Lang       string // the language of the page, for <html lang>
	SiteName   string
	Support    string
	Prefix     string // the path prefix, for form actions and links
	Stylesheet string // the URL of the stylesheet
	CSRF       string // the value of every form's hidden csrf field
	Error      string // key of the text of what went wrong, if anything
	Notice     string // key of a text that confirms something, if any
	Account    string // the account as typed, kept when it is asked again
	Flow       string // the flow on the code page
	Digits     int    // the length of a code
	Minutes    int    // how long a code works
	MinLength  int    // the shortest new password
	Attempts   int    // codes that may still be tried
	State      string // on the problem page: what went wrong
	Next       string // on the problem page: the link to the next step
	Notified   bool   // on the done page: a notice went to the phone

	status     int
	retryAfter int64 // seconds
	texts      map[string]string
	vars       *strings.Replacer
}

// T returns the text of key in the page's language, with {site},
// {support}, {digits}, {minutes}, {min}, {attempts} and {wait} filled in.
// A key without a text fails the render.
func (v *view) T(key string) (string, error) {
	s, ok := v.texts[key]
	if !ok {
		return "", fmt.Errorf("no text %q", key)
	}
	return v.vars.Replace(s), nil
}

// baseView starts a page in lang with the settings every page shows.
func (h *Handler) baseView(lang, csrf string) *view {
	return &view{
		Lang:       lang,
		SiteName:   h.SiteName,
		Support:    h.Support,
		Prefix:     h.prefix,
		Stylesheet: h.prefix + "/?style=" + h.pages.styleTag,
		CSRF:       csrf,
		Digits:     h.CodeLength,
		Minutes:    int((time.Duration(h.CodeTTL) + time.Minute - 1) / time.Minute),
		MinLength:  h.PasswordMinLength,
		Notified:   h.NotifyOnReset != nil && *h.NotifyOnReset,
		status:     http.StatusOK,
		texts:      h.pages.texts[lang],
	}
}

// render executes v's template, filling in the variables of its texts.
func (p *pages) render(v *view) ([]byte, error) {
	v.vars = strings.NewReplacer(
		"{site}", v.SiteName,
		"{support}", v.Support,
		"{digits}", strconv.Itoa(v.Digits),
		"{minutes}", strconv.Itoa(v.Minutes),
		"{min}", strconv.Itoa(v.MinLength),
		"{attempts}", strconv.Itoa(v.Attempts),
		"{wait}", waitText(v.texts, v.retryAfter),
	)
	var buf bytes.Buffer
	if err := p.templates[v.Name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// waitText says how long secs is in words, rounded up to a unit a person
// can plan with.
func waitText(texts map[string]string, secs int64) string {
	n, key := secs, "wait.seconds"
	switch {
	case secs <= 60:
	case secs <= 90*60:
		n, key = (secs+59)/60, "wait.minutes"
	default:
		n, key = (secs+3599)/3600, "wait.hours"
	}
	if n == 1 {
		key = strings.TrimSuffix(key, "s")
	}
	return strings.ReplaceAll(texts[key], "{n}", strconv.FormatInt(n, 10))
}

// setPageHeaders sets the headers every page carries: no script, no
// framing, no caching and no referrer, which would leak the flow.
func setPageHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// writePage answers with the page v.
func (h *Handler) writePage(w http.ResponseWriter, r *http.Request, v *view) error {
	body, err := h.pages.render(v)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("rendering %s page: %w", v.Name, err))
	}
	hdr := w.Header()
	setPageHeaders(hdr)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", v.Lang)
	hdr.Add("Vary", "Accept-Language")
	if v.retryAfter > 0 {
		hdr.Set("Retry-After", strconv.FormatInt(v.retryAfter, 10))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(v.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// seeOther sends the browser on to target after a form post.
func seeOther(w http.ResponseWriter, r *http.Request, target string) error {
	setPageHeaders(w.Header())
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// servePage answers GET <prefix>/: the account page, the code page of the
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
		if _, err := r.Cookie(resetCookie); err != nil {
			return h.problem(w, r, v, recovery.ErrInvalidToken)
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
	}
	return h.writePage(w, r, v)
}

// serveStyle answers the stylesheet. Its URL names its version, so the
// current version may be cached for good.
func (h *Handler) serveStyle(w http.ResponseWriter, r *http.Request, version string) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/css; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if version == h.pages.styleTag {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(h.pages.style)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(h.pages.style)
	}
	return nil
}

// newView starts a page in the language the browser prefers, with the
// CSRF token of the browser, which it sets when the browser has none.
func (h *Handler) newView(w http.ResponseWriter, r *http.Request) (*view, error) {
	token := csrfFromCookie(r)
	if token == "" {
		b := make([]byte, csrfBytes)
		if _, err := io.ReadFull(h.pages.rand, b); err != nil {
			return nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("reading randomness: %w", err))
		}
		token = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, h.cookie(r, csrfCookie, token, 0))
	}
	return h.baseView(h.pages.language(r.Header.Get("Accept-Language")), token), nil
}

// cookie is a cookie only this handler's pages see, and only from
// same-site requests, and over TLS only when public_url is https or the
// request came over TLS. A maxAge of 0 makes a session cookie; below 0
// deletes it.
func (h *Handler) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     cmp.Or(h.prefix, "/"),
		MaxAge:   maxAge,
		Secure:   h.pages.secure || r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
}

// csrfFromCookie returns the browser's CSRF token, or "" if it has none of
// the right shape.
func csrfFromCookie(r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
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

// language picks the supported language the Accept-Language header ranks
// highest, honouring q-values; ties go to the one named first. Without a
// match it is the configured language.
func (p *pages) language(header string) string {
	best, bestQ := p.defaultLang, 0.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if k, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		lang := primaryLang(tag)
		if _, ok := p.texts[lang]; ok && q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}

// primaryLang returns the primary subtag of a language tag, in lower case.
func primaryLang(tag string) string {
	tag, _, _ = strings.Cut(strings.TrimSpace(tag), "-")
	tag, _, _ = strings.Cut(tag, "_")
	return strings.ToLower(tag)
}

// serveForm answers a form post from the pages. Every post must carry the
// CSRF token of the browser's cookie; one that does not is refused before
// anything else is done.
//
// A reset whose form carries its own reset_token is not from the pages but
// a client of the API, which SPEC §6 lets send a form: it goes the way of a
// JSON reset. It needs no CSRF check, since it rides on no cookie.
func (h *Handler) serveForm(w http.ResponseWriter, r *http.Request, route string, next caddyhttp.Handler) error {
	raw, e := readBody(w, r)
	var form url.Values
	var formErr error
	if e == nil {
		form, formErr = url.ParseQuery(string(raw))
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
		v.status = http.StatusNotFound
		return h.problemState(w, r, v, "error")
	case e != nil:
		v.status = e.status
		return h.problemState(w, r, v, "invalid")
	case formErr != nil:
		v.status = http.StatusBadRequest
		return h.problemState(w, r, v, "invalid")
	}
	sent := form.Get(csrfField)
	if csrfFromCookie(r) == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(v.CSRF)) != 1 {
		v.status = http.StatusForbidden
		return h.problemState(w, r, v, "csrf")
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

func (h *Handler) formStart(w http.ResponseWriter, r *http.Request, v *view, form url.Values) error {
	v.Account = form.Get("account")
	started, err := h.svc.Start(r.Context(), recovery.StartRequest{
		Account:   v.Account,
		ClientIP:  clientIP(r),
		PublicURL: h.PublicURL, // never the request's Host, which a client chooses
	})
	switch {
	case errors.Is(err, recovery.ErrInvalidRequest):
		v.Name, v.Error, v.status = "account", "account.error.empty", http.StatusBadRequest
		if typed := strings.TrimSpace(v.Account); typed != "" {
			v.Error = "account.error.invalid"
			// A name refused for its characters is not shown again: it may
			// hold invisible or direction controls that would disguise the
			// field, and sending it back as it is would only fail again.
			if utf8.RuneCountInString(typed) <= recovery.MaxAccountLen {
				v.Account = ""
			}
		}
		return h.writePage(w, r, v)
	case err != nil:
		return h.problem(w, r, v, err)
	}
	return seeOther(w, r, h.prefix+"/?flow="+url.QueryEscape(started.FlowID))
}

func (h *Handler) formResend(w http.ResponseWriter, r *http.Request, v *view, form url.Values) error {
	v.Flow = form.Get("flow")
	if !plausibleID(v.Flow) {
		return h.badLink(w, r, v)
	}
	started, err := h.svc.Resend(r.Context(), v.Flow, clientIP(r))
	var d *recovery.Denial
	switch {
	case errors.As(err, &d) && d.Scope == "resend_interval":
		v.Name, v.Error, v.status = "code", "code.error.too_early", http.StatusTooManyRequests
		v.retryAfter = retrySeconds(d.RetryAfter)
		return h.writePage(w, r, v)
	case errors.Is(err, recovery.ErrInvalidRequest):
		return h.badLink(w, r, v)
	case err != nil:
		return h.problem(w, r, v, err)
	}
	return seeOther(w, r, h.prefix+"/?flow="+url.QueryEscape(started.FlowID)+"&sent=1")
}

func (h *Handler) formVerify(w http.ResponseWriter, r *http.Request, v *view, form url.Values) error {
	v.Flow = form.Get("flow")
	if !plausibleID(v.Flow) {
		return h.badLink(w, r, v)
	}
	verified, err := h.svc.Verify(r.Context(), v.Flow, compactCode(form.Get("code")), clientIP(r))
	var ce *recovery.CodeError
	switch {
	case errors.As(err, &ce):
		v.Name, v.status, v.Attempts = "code", http.StatusBadRequest, ce.AttemptsLeft
		switch ce.AttemptsLeft {
		case 0:
			v.Error = "code.error.wrong_none"
		case 1:
			v.Error = "code.error.wrong_one"
		default:
			v.Error = "code.error.wrong_other"
		}
		return h.writePage(w, r, v)
	case errors.Is(err, recovery.ErrInvalidRequest):
		v.Name, v.Error, v.status = "code", "code.error.format", http.StatusBadRequest
		return h.writePage(w, r, v)
	case err != nil:
		return h.problem(w, r, v, err)
	}
	http.SetCookie(w, h.cookie(r, resetCookie, verified.Token, int(verified.ExpiresIn.Seconds())))
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
func (h *Handler) formReset(w http.ResponseWriter, r *http.Request, v *view, form url.Values, next caddyhttp.Handler) error {
	c, err := r.Cookie(resetCookie)
	if err != nil {
		return h.problem(w, r, v, recovery.ErrInvalidToken)
	}
	password := form.Get("password")
	v.Name, v.status = "password", http.StatusBadRequest
	switch {
	case password != form.Get("password_again"):
		v.Error = "password.error.mismatch"
		return h.writePage(w, r, v)
	case utf8.RuneCountInString(password) < h.PasswordMinLength:
		v.Error = "password.error.short"
		return h.writePage(w, r, v)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	dropCookies(r.Header, csrfCookie, resetCookie)
	body := url.Values{"password": {password}}.Encode()
	answer := &discardWriter{header: make(http.Header)}
	status, nextErr, err := h.forwardReset(answer, r, next, c.Value, []byte(body))
	switch {
	case err != nil:
		return h.problem(w, r, v, err)
	case nextErr == nil && status >= 200 && status < 300:
		http.SetCookie(w, h.cookie(r, resetCookie, "", -1))
		v.Name, v.status = "done", http.StatusOK
		return h.writePage(w, r, v)
	case nextErr == nil && (status == http.StatusBadRequest || status == http.StatusConflict || status == http.StatusUnprocessableEntity):
		v.Error, v.status = "password.error.refused", status
		return h.writePage(w, r, v)
	}
	if nextErr == nil {
		h.logger.Warn("upstream refused the reset from the page", zap.Int("status", status))
	}
	v.Next, v.status = h.prefix+"/?step=password", http.StatusBadGateway
	return h.problemState(w, r, v, "upstream")
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
func (h *Handler) badLink(w http.ResponseWriter, r *http.Request, v *view) error {
	v.Name, v.Flow, v.Notice, v.status = "account", "", "account.notice.badlink", http.StatusBadRequest
	return h.writePage(w, r, v)
}

// problem answers an outcome of the flow with the problem page, with the
// status, Retry-After and log line the JSON API would give it.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, v *view, err error) error {
	e := h.errorFor(err)
	if e.status >= 500 {
		h.outageLogger.Error("recovery request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	if errors.Is(err, recovery.ErrUnavailable) {
		h.observer.unavailable()
	}
	v.status = e.status
	if e.RetryAfter != nil {
		v.retryAfter = *e.RetryAfter
	}
	return h.problemState(w, r, v, cmp.Or(problemOfCode[e.Code], "error"))
}

// problemState answers the problem page for state with v's status. Its
// link leads to v.Next, or else to the start.
func (h *Handler) problemState(w http.ResponseWriter, r *http.Request, v *view, state string) error {
	v.Name, v.State, v.Error = "problem", state, ""
	if v.Next == "" {
		v.Next = h.prefix + "/"
	}
	return h.writePage(w, r, v)
}
