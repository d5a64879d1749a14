package module

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// ServeHTTP answers the recovery routes and passes everything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// These headers are set only by the gateway: a client's copies never pass.
	httpsig.Strip(r.Header)
	route, ok := h.route(r.URL.Path)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	if route == "" || route == "/" {
		return h.serveRoot(w, r, route)
	}
	if route == healthRoute {
		return h.serveHealth(w, r)
	}
	if provider, ok := strings.CutPrefix(route, reportRoute); ok {
		return h.serveReport(w, r, provider)
	}
	if route == recovery.NotMePath {
		return h.serveNotMe(w, r)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.refuse(w, r, errMethod)
	}
	if isForm(r) {
		return h.serveForm(w, r, route, next)
	}
	if !isJSON(r) {
		return h.refuse(w, r, errMediaType)
	}
	switch route {
	case "/start":
		return h.start(w, r)
	case "/resend":
		return h.resend(w, r)
	case "/verify":
		return h.verify(w, r)
	case "/reset":
		return h.reset(w, r, next)
	}
	return h.refuse(w, r, errNotFound)
}

// route returns the path below the prefix and whether the path is under it.
func (h *Handler) route(path string) (string, bool) {
	if h.prefix == "" {
		return path, true
	}
	rest, ok := strings.CutPrefix(path, h.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// serveRoot answers GET <prefix>/, the page that walks a person through.
func (h *Handler) serveRoot(w http.ResponseWriter, r *http.Request, route string) error {
	if route == "" {
		target := h.prefix + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return h.refuse(w, r, errMethod)
	}
	return h.servePage(w, r)
}

func isJSON(r *http.Request) bool {
	return mediaType(r) == "application/json"
}

// isForm reports a form post, which comes from the module's own pages and
// is answered with HTML.
func isForm(r *http.Request) bool {
	return mediaType(r) == "application/x-www-form-urlencoded"
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	switch ct { // what ParseMediaType gives back unchanged, without parsing
	case "application/json", "application/x-www-form-urlencoded":
		return ct
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// readBody reads at most maxBodyBytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errTooLarge
	case err != nil:
		return nil, errBadJSON
	}
	return body, nil
}

// decode reads the JSON object of the request body into v. Unknown keys
// are ignored, as json.Unmarshal does; anything after the object is not.
func decode(w http.ResponseWriter, r *http.Request, v any) *refusal {
	body, rf := readBody(w, r)
	if rf != nil {
		return rf
	}
	if json.Unmarshal(body, v) != nil {
		return errBadJSON
	}
	return nil
}

type startRequest struct {
	Account string `json:"account"`
}

type flowRequest struct {
	Flow string `json:"flow"`
	Code string `json:"code"`
}

type startResponse struct {
	Flow      string `json:"flow"`
	ExpiresIn int64  `json:"expires_in"`
}

type verifyResponse struct {
	ResetToken string `json:"reset_token"`
	ExpiresIn  int64  `json:"expires_in"`
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request) error {
	var req startRequest
	if rf := decode(w, r, &req); rf != nil {
		return h.refuse(w, r, rf)
	}
	started, err := h.svc.Start(r.Context(), recovery.StartRequest{
		Account:   req.Account,
		ClientIP:  clientIP(r),
		PublicURL: h.PublicURL, // never the request's Host, which a client chooses
	})
	return h.started(w, r, started, err)
}

func (h *Handler) resend(w http.ResponseWriter, r *http.Request) error {
	var req flowRequest
	if rf := decode(w, r, &req); rf != nil {
		return h.refuse(w, r, rf)
	}
	started, err := h.svc.Resend(r.Context(), req.Flow, clientIP(r))
	return h.started(w, r, started, err)
}

// started answers /start and /resend.
func (h *Handler) started(w http.ResponseWriter, r *http.Request, started recovery.Started, err error) error {
	if err != nil {
		return h.fail(w, r, err)
	}
	writeJSON(w, http.StatusAccepted, startResponse{Flow: started.FlowID, ExpiresIn: int64(started.ExpiresIn.Seconds())})
	return nil
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request) error {
	var req flowRequest
	if rf := decode(w, r, &req); rf != nil {
		return h.refuse(w, r, rf)
	}
	v, err := h.svc.Verify(r.Context(), req.Flow, req.Code, clientIP(r))
	if err != nil {
		return h.fail(w, r, err)
	}
	writeJSON(w, http.StatusOK, verifyResponse{ResetToken: v.Token, ExpiresIn: int64(v.ExpiresIn.Seconds())})
	return nil
}

// clientIP is Caddy's idea of the client address, which honours
// trusted_proxies; a raw X-Forwarded-For is never read here.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}
