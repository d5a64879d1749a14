package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

const tokenField = "reset_token"

// routingHeaders are the headers with which common web frameworks and the
// proxies in front of them let a request name another method, path or host
// than the one it has. The signature covers the method and the path (and the
// account), so none of them may reach the upstream on a signed forward: they
// would make it run a signed POST to the reset path as another method, at
// another path or for another virtual host.
//
//   - Method: X-HTTP-Method-Override (Symfony and Laravel, Rack and so Rails
//     and Sinatra, Express's method-override, ASP.NET Core's
//     HttpMethodOverride, Jersey, gorilla/handlers), X-HTTP-Method
//     (Microsoft's OData and WCF services), X-Method-Override (an Express
//     method-override getter), X-Original-Method and X-Forwarded-Method
//     (nginx auth_request and Traefik forwardAuth, read by the services
//     behind them).
//   - Path: X-Original-URL and X-Rewrite-URL (IIS URL Rewrite, honoured by
//     Zend Framework and Laminas, older Symfony and what runs on them, a
//     well-known access-control bypass), X-Original-URI (nginx
//     auth_request), X-Forwarded-URI (Traefik), X-Forwarded-Prefix (Spring's
//     ForwardedHeaderFilter, Symfony, Werkzeug's ProxyFix, Traefik and Kong),
//     X-Forwarded-Path (Kong), X-Envoy-Original-Path (Envoy).
//   - Host: X-Forwarded-Host (host-based routes of Laravel, Symfony, Django,
//     Rails and Spring behind a trusted proxy) and Forwarded (RFC 7239, whose
//     host= Spring, Symfony and Rack read). Caddy's reverse_proxy sets its own
//     X-Forwarded-Host after this handler, from the request's Host or a
//     trusted proxy's value, but passes Forwarded through as it comes.
//
// Kept: X-Forwarded-For and X-Forwarded-Proto, which say who asked and over
// what, route nothing, and which reverse_proxy rewrites from what Caddy knows
// (trusted_proxies); dropping X-Forwarded-Proto would make a TLS-terminating
// load balancer's https look like http to the upstream.
var routingHeaders = []string{
	"X-HTTP-Method-Override",
	"X-HTTP-Method",
	"X-Method-Override",
	"X-Original-Method",
	"X-Forwarded-Method",
	"X-Original-URL",
	"X-Rewrite-URL",
	"X-Original-URI",
	"X-Forwarded-URI",
	"X-Forwarded-Prefix",
	"X-Forwarded-Path",
	"X-Envoy-Original-Path",
	"X-Forwarded-Host",
	"Forwarded",
}

// reset answers a JSON reset: it takes the reset token out of the body,
// forwards the rest and streams the upstream's answer back.
func (h *Handler) reset(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	raw, rf := readBody(w, r)
	if rf != nil {
		return h.refuse(w, r, rf)
	}
	token, body, err := takeToken(r.Header.Get("Content-Type"), raw, h.Forward.Fields)
	if err != nil {
		return h.refuse(w, r, errBadJSON)
	}
	status, nextErr, err := h.forwardReset(w, r, next, token, body)
	if err != nil {
		return h.fail(w, r, err)
	}
	if nextErr != nil {
		if status != 0 {
			return nextErr // the upstream's answer has begun; let Caddy finish it
		}
		rf := *errUpstream
		var he caddyhttp.HandlerError
		if errors.As(nextErr, &he) && he.StatusCode >= 500 {
			rf.status = he.StatusCode
		}
		return h.refuse(w, r, &rf)
	}
	return nil
}

// forwardReset spends a reset token on one call to the upstream, for the
// JSON API and the pages alike: it signs the request with body for the
// account the token is bound to and passes it to next, which answers on w.
// The token is spent only if the upstream answers 2xx; otherwise it stays
// valid for another try.
//
// err is a refused token or a failure to sign: then nothing was forwarded.
// Otherwise status is what the upstream answered (0 if it wrote nothing)
// and nextErr is what next returned.
func (h *Handler) forwardReset(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, token string, body []byte) (status int, nextErr, err error) {
	rs, err := h.svc.BeginReset(r.Context(), token, clientIP(r))
	if err != nil {
		return 0, nil, err
	}
	// The outcome is recorded even if the client goes away meanwhile.
	ctx := context.WithoutCancel(r.Context())
	// A refusal from here on (the upstream's) is the flow's.
	caddyhttp.SetVar(r.Context(), traceVar, rs.Trace)

	if h.Forward.Path != "" {
		r.URL.Path, r.URL.RawPath = h.Forward.Path, ""
	}
	// The signature covers the path but not the query, so a query would
	// reach the upstream unsigned: nothing of it is passed on.
	r.URL.RawQuery, r.URL.ForceQuery = "", false
	r.RequestURI = r.URL.RequestURI()
	for _, name := range routingHeaders {
		r.Header.Del(name)
	}
	r.Body = http.NoBody
	if len(body) > 0 {
		r.Body = readCloser{bytes.NewReader(body)}
	}
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if err := h.signer.Sign(r.Header, r.Method, r.URL.EscapedPath(), body, rs.Account, h.now()); err != nil {
		_ = rs.Finish(ctx, false)
		return 0, nil, err
	}

	sw := &statusWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	nextErr = next.ServeHTTP(sw, r)
	accepted := nextErr == nil && sw.status >= 200 && sw.status < 300
	if err := rs.Finish(ctx, accepted); err != nil {
		h.logger.Error("recording reset outcome", zap.Error(err))
	}
	if nextErr != nil && sw.status == 0 {
		h.logger.Warn("upstream did not take the reset", zap.Error(nextErr))
	}
	return sw.status, nextErr, nil
}

// takeToken removes the reset token from a JSON or form body and returns the
// token and the body as the upstream should see it: without the token, and
// with only the named fields if fields is not empty.
func takeToken(contentType string, raw []byte, fields []string) (string, []byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		v, err := url.ParseQuery(string(raw))
		if err != nil {
			return "", nil, err
		}
		token := v.Get(tokenField)
		v.Del(tokenField)
		if len(fields) > 0 {
			maps.DeleteFunc(v, func(name string, _ []string) bool { return !slices.Contains(fields, name) })
		}
		return token, []byte(v.Encode()), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return "", nil, errors.New("body is not a JSON object")
	}
	var token string
	if err := json.Unmarshal(obj[tokenField], &token); err != nil {
		return "", nil, errors.New("reset_token is not a string")
	}
	delete(obj, tokenField)
	if len(fields) > 0 {
		maps.DeleteFunc(obj, func(name string, _ json.RawMessage) bool { return !slices.Contains(fields, name) })
	}
	out, err := json.Marshal(obj)
	return token, out, err
}

// statusWriter remembers the status the upstream answered with.
type statusWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
