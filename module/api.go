package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, bodyError(err)
	}
	return body, nil
}

// bodyError is the answer to a body that could not be read.
func bodyError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge
	}
	return errBadJSON
}

// bodyBuffers hold JSON bodies while they are decoded. One that grew past
// maxPooledBody, for a large body, is not kept.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 4 << 10

// putBodyBuffer empties buf and puts it back in the pool, unless it grew
// too large to keep.
func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		clear(buf.Bytes()) // a body may hold a code
		buf.Reset()
		bodyBuffers.Put(buf)
	}
}

// decode reads a JSON object of string fields into v.
func decode(w http.ResponseWriter, r *http.Request, v stringFields) *apiError {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
		return bodyError(err)
	}
	// One object and nothing after it, decoded from the bytes read: no
	// copy into a string, no decoder buffer. The strings decoded are
	// copies, so the buffer can be used again.
	if decodePlain(buf.Bytes(), v) {
		return nil
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return errBadJSON
	}
	return nil
}

// stringFields is a request of string fields, which decodePlain fills
// without reflection: field returns the field a JSON key names exactly, or
// nil.
type stringFields interface {
	field(key []byte) *string
}

func (r *startRequest) field(key []byte) *string {
	if string(key) == "account" {
		return &r.Account
	}
	return nil
}

func (r *flowRequest) field(key []byte) *string {
	switch string(key) {
	case "flow":
		return &r.Flow
	case "code":
		return &r.Code
	}
	return nil
}

// maxPlainFields bounds the keys decodePlain takes in one object.
const maxPlainFields = 4

// decodePlain fills v from data and reports true when data is what
// clients send: one JSON object, keys that are v's field names exactly,
// and values that are strings of printable ASCII with no escape. For any
// other body it changes nothing and reports false, and json.Unmarshal
// decodes it; for the bodies it takes, the two give the same: a repeated
// key's last value wins, and "{}" sets nothing.
func decodePlain(data []byte, v stringFields) bool {
	var set [maxPlainFields]struct {
		to  *string
		val []byte
	}
	n := 0
	i := skipJSONSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipJSONSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipJSONSpace(data, i+1) == len(data)
	}
	for {
		key, next, ok := plainJSONString(data, i)
		if !ok {
			return false
		}
		to := v.field(key)
		if to == nil || n == maxPlainFields {
			return false
		}
		i = skipJSONSpace(data, next)
		if i == len(data) || data[i] != ':' {
			return false
		}
		val, next, ok := plainJSONString(data, skipJSONSpace(data, i+1))
		if !ok {
			return false
		}
		set[n].to, set[n].val = to, val
		n++
		i = skipJSONSpace(data, next)
		if i == len(data) {
			return false
		}
		if data[i] == '}' {
			break
		}
		if data[i] != ',' {
			return false
		}
		i = skipJSONSpace(data, i+1)
	}
	if skipJSONSpace(data, i+1) != len(data) {
		return false
	}
	for _, s := range set[:n] {
		*s.to = string(s.val)
	}
	return true
}

// skipJSONSpace returns the index of the first byte of data at or after i
// that is not JSON white space.
func skipJSONSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads the JSON string at data[i:] when it holds only
// printable ASCII and no escape, and returns its content and the index
// after its closing quote.
func plainJSONString(data []byte, i int) ([]byte, int, bool) {
	if i == len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
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
	if e := decode(w, r, &req); e != nil {
		return h.refuse(w, r, e)
	}
	started, err := h.svc.Start(r.Context(), recovery.StartRequest{
		Account:   req.Account,
		ClientIP:  clientIP(r),
		PublicURL: h.PublicURL, // never the request's Host, which a client chooses
	})
	if err != nil {
		return h.fail(w, r, err)
	}
	writeStarted(w, started.FlowID, int64(started.ExpiresIn.Seconds()))
	return nil
}

func (h *Handler) resend(w http.ResponseWriter, r *http.Request) error {
	var req flowRequest
	if e := decode(w, r, &req); e != nil {
		return h.refuse(w, r, e)
	}
	started, err := h.svc.Resend(r.Context(), req.Flow, clientIP(r))
	if err != nil {
		return h.fail(w, r, err)
	}
	writeStarted(w, started.FlowID, int64(started.ExpiresIn.Seconds()))
	return nil
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request) error {
	var req flowRequest
	if e := decode(w, r, &req); e != nil {
		return h.refuse(w, r, e)
	}
	v, err := h.svc.Verify(r.Context(), req.Flow, req.Code, clientIP(r))
	if err != nil {
		return h.fail(w, r, err)
	}
	writeJSON(w, http.StatusOK, verifyResponse{ResetToken: v.Token, ExpiresIn: int64(v.ExpiresIn.Seconds())})
	return nil
}

// fail answers err, logging what the person is not told.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) error {
	e := h.errorFor(err)
	if e.status >= 500 {
		h.outageLogger.Error("recovery request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	if errors.Is(err, recovery.ErrUnavailable) {
		h.observer.unavailable()
	}
	return h.refuse(w, r, e)
}

// clientIP is Caddy's idea of the client address, which honours
// trusted_proxies; a raw X-Forwarded-For is never read here.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}
