package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/examplekey"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the sms_recovery_verify handler, for an upstream that
// sits behind a Caddy of its own: it passes a request on only if it carries
// a valid signature from the sms_recovery gateway (SPEC §6) that it has not
// seen before, and answers 401 otherwise. The upstream can then trust the
// X-Recovery-Account header as the account whose phone was verified.
type Handler struct {
	// KeyID is the key ID the gateway signs with, its forward key_id.
	// Required.
	KeyID string `json:"key_id,omitempty"`

	// HMACKey is the base64 of the key shared with the gateway's forward
	// hmac_key, at least 64 bytes. Exactly one of hmac_key and
	// ed25519_public_key is required. Whoever holds this key can sign a
	// password reset for any account: keep it out of version control.
	HMACKey string `json:"hmac_key,omitempty"`

	// Ed25519PublicKey is the path of a PEM file holding the public half
	// (PKIX "PUBLIC KEY") of the gateway's forward ed25519_key. Exactly one
	// of hmac_key and ed25519_public_key is required.
	Ed25519PublicKey string `json:"ed25519_public_key,omitempty"`

	// Keys are more gateway keys to accept, each under its own key_id, so
	// that the gateway's key rotates without a moment in which resets
	// fail: add the new key here, switch the gateway to it, then make it
	// the only key. A request accepted under one key is a replay under
	// every other.
	Keys []Key `json:"keys,omitempty"`

	// MaxSkew is how far the gateway's clock may be off from this server's:
	// a signature is accepted from max_skew before its created time until
	// max_skew after its expires time. A longer skew keeps a captured
	// request usable for longer, though never twice. At least 1s.
	// Default: 60s.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// NonceStoreRaw is where the nonces of accepted signatures are kept, so
	// that each signed request is accepted once: a module of the namespace
	// http.handlers.sms_recovery_verify.nonce_stores, named by its
	// "store". Default: {"store": "memory"}, this process alone, which a
	// captured request replayed to another instance, or to this one after
	// a restart, gets past once more while its window is open (60 s after
	// signing, plus max_skew). Several instances behind a load balancer,
	// or one whose restarts matter, need {"store": "redis", "url":
	// "redis://127.0.0.1:6379/0"}, shared by all of them; while Redis does
	// not answer, signed requests get 503.
	NonceStoreRaw json.RawMessage `json:"nonce_store,omitempty" caddy:"namespace=http.handlers.sms_recovery_verify.nonce_stores inline_key=store"`

	// WriterRaw, when set, makes the handler answer a verified reset
	// itself rather than pass it on: it sets the account's new password,
	// read from the body's password_field, with this module of the
	// namespace http.handlers.sms_recovery_verify.writers, named by its
	// "writer", such as {"writer": "passwd_file", "path":
	// "/etc/dovecot/users"}. It answers 204 when the password is set, 400
	// naming the rule a refused password breaks (the gateway keeps the
	// reset code valid for another try), 404 when the store has no such
	// account.
	WriterRaw json.RawMessage `json:"password,omitempty" caddy:"namespace=http.handlers.sms_recovery_verify.writers inline_key=writer"`

	// PasswordField is the body field (JSON or form) that holds the new
	// password, for write. Default: password.
	PasswordField string `json:"password_field,omitempty"`

	// MinPasswordLength is the least length of a new password, in
	// characters, for write. Default: 15.
	MinPasswordLength int `json:"min_password_length,omitempty"`

	// PasswordBlocklist is the path of a file of refused passwords, one a
	// line, compared without regard to case, for write.
	PasswordBlocklist string `json:"password_blocklist,omitempty"`

	verifier *httpsig.VerifierSet
	writer   PasswordWriter
	policy   policy
	clock    recovery.Clock
	logger   *zap.Logger
	// localOnly is whether the server the handler is provisioned in
	// listens on this machine only (listensLocalOnly).
	localOnly bool
}

// Key is one more gateway key an sms_recovery_verify handler accepts.
type Key struct {
	// KeyID is the key ID the gateway signs with under this key. Required,
	// and distinct from the handler's other key IDs.
	KeyID string `json:"key_id,omitempty"`

	// HMACKey is the base64 of the shared key, at least 64 bytes. Exactly
	// one of hmac_key and ed25519_public_key is required.
	HMACKey string `json:"hmac_key,omitempty"`

	// Ed25519PublicKey is the path of a PEM file holding the gateway's
	// public key. Exactly one of hmac_key and ed25519_public_key is
	// required.
	Ed25519PublicKey string `json:"ed25519_public_key,omitempty"`
}

// keys returns every key the handler accepts, its own first.
func (h *Handler) keys() []Key {
	return append([]Key{{KeyID: h.KeyID, HMACKey: h.HMACKey, Ed25519PublicKey: h.Ed25519PublicKey}}, h.Keys...)
}

// verifyDefaultMaxSkew is the default of max_skew.
const verifyDefaultMaxSkew = caddy.Duration(httpsig.DefaultMaxSkew)

// maxBodyBytes bounds the body of a request to check, as the gateway bounds
// the body it signs.
const maxBodyBytes = 64 << 10

// problem is the JSON body of a refusal, in the shape of the gateway's
// errors (SPEC §4).
type problem struct {
	status     int
	Code       string `json:"error"`
	Rule       string `json:"rule,omitempty"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retry_after,omitzero"`
}

var (
	errVerifyInvalid = problem{status: http.StatusUnauthorized, Code: "invalid_signature",
		Message: "The request does not carry a valid, unused signature from the recovery gateway."}
	errVerifyBusy = problem{status: http.StatusServiceUnavailable, Code: "unavailable",
		Message:    "Too many signed requests to check right now. Try again in a minute.",
		RetryAfter: int64(httpsig.MaxValidity / time.Second)}
	errNonceStoreDown = problem{status: http.StatusServiceUnavailable, Code: "unavailable",
		Message:    "The store of used signatures does not answer, so this request cannot be checked. Try again shortly.",
		RetryAfter: 5}
	errTooLarge = problem{status: http.StatusRequestEntityTooLarge, Code: "too_large",
		Message: "The request body is larger than 64 KiB."}
)

// refuse answers with p as JSON.
func refuse(w http.ResponseWriter, p problem) {
	hdr := w.Header()
	if p.RetryAfter > 0 {
		hdr.Set("Retry-After", strconv.FormatInt(p.RetryAfter, 10))
	}
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.status)
	_ = json.NewEncoder(w).Encode(p)
}

// clientIP is the client address Caddy determined, trusted proxies applied.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sms_recovery_verify",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills defaults, checks the configuration, loads the nonce store
// and builds the verifier on it.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.clock == nil {
		h.clock = clock.Real{}
	}
	if h.MaxSkew == 0 {
		h.MaxSkew = verifyDefaultMaxSkew
	}
	if err := h.expandPlaceholders(); err != nil {
		return err
	}
	h.localOnly = listensLocalOnly(ctx)
	if err := h.Validate(); err != nil {
		return err
	}

	if h.NonceStoreRaw == nil {
		h.NonceStoreRaw = json.RawMessage(`{"store": "memory"}`)
	}
	// The context cleans the store up with the config that loaded it.
	mod, err := ctx.LoadModule(h, "NonceStoreRaw")
	if err != nil {
		return fmt.Errorf("loading nonce_store: %w", err)
	}
	nonces, ok := mod.(httpsig.NonceStore)
	if !ok {
		return fmt.Errorf("nonce_store: module %T is not a nonce store", mod)
	}

	if err := h.loadWriter(ctx); err != nil {
		return err
	}

	var verifiers []*httpsig.Verifier
	for _, k := range h.keys() {
		cfg := httpsig.VerifierConfig{KeyID: k.KeyID, MaxSkew: time.Duration(h.MaxSkew), Nonces: nonces}
		if k.HMACKey != "" {
			key, err := base64.StdEncoding.DecodeString(k.HMACKey)
			if err != nil {
				return fmt.Errorf("key %q: hmac_key is not base64: %w", k.KeyID, err)
			}
			cfg.HMACKey = key
		} else {
			key, err := httpsig.LoadEd25519PublicKey(k.Ed25519PublicKey)
			if err != nil {
				return fmt.Errorf("key %q: ed25519_public_key: %w", k.KeyID, err)
			}
			cfg.PublicKey = key
		}
		v, err := httpsig.NewVerifier(cfg)
		if err != nil {
			return fmt.Errorf("key %q: %w", k.KeyID, err)
		}
		verifiers = append(verifiers, v)
	}
	h.verifier, err = httpsig.NewVerifierSet(verifiers...)
	return err
}

// loadWriter loads the password writer and its policy, if write is set.
func (h *Handler) loadWriter(ctx caddy.Context) error {
	if h.WriterRaw == nil {
		return nil
	}
	if h.PasswordField == "" {
		h.PasswordField = defaultPasswordField
	}
	if h.MinPasswordLength == 0 {
		h.MinPasswordLength = defaultMinPasswordLength
	}
	var err error
	if h.policy, err = loadPolicy(h.MinPasswordLength, h.PasswordBlocklist); err != nil {
		return err
	}
	mod, err := ctx.LoadModule(h, "WriterRaw")
	if err != nil {
		return fmt.Errorf("loading write: %w", err)
	}
	var ok bool
	if h.writer, ok = mod.(PasswordWriter); !ok {
		return fmt.Errorf("password: module %T is not a password writer", mod)
	}
	return nil
}

// expandPlaceholders replaces global placeholders such as
// {env.GATEWAY_HMAC_KEY} in the keys; a placeholder that expands to
// nothing is an error that names it.
func (h *Handler) expandPlaceholders() error {
	repl := caddy.NewReplacer()
	errs := []error{
		placeholder.Expand(repl, "hmac_key", &h.HMACKey),
		placeholder.Expand(repl, "ed25519_public_key", &h.Ed25519PublicKey),
	}
	for i := range h.Keys {
		k := &h.Keys[i]
		errs = append(errs,
			placeholder.Expand(repl, fmt.Sprintf("key %q: hmac_key", k.KeyID), &k.HMACKey),
			placeholder.Expand(repl, fmt.Sprintf("key %q: ed25519_public_key", k.KeyID), &k.Ed25519PublicKey))
	}
	return errors.Join(errs...)
}

// listensLocalOnly reports whether the server a handler is provisioned in
// takes connections from this machine only: every address it listens on
// is a loopback address, localhost or a Unix socket. Outside a server it
// reports false.
func listensLocalOnly(ctx caddy.Context) bool {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || len(srv.Listen) == 0 {
		return false
	}
	repl := caddy.NewReplacer()
	for _, l := range srv.Listen {
		addr, err := caddy.ParseNetworkAddress(repl.ReplaceAll(l, ""))
		if err != nil || !addr.IsUnixNetwork() && !examplekey.LoopbackHost(addr.Host) {
			return false
		}
	}
	return true
}

// checkExampleKey refuses the examples' published key, with which anyone
// can sign a reset, unless only this machine reaches the server.
func (h *Handler) checkExampleKey(field, key string) error {
	if key != examplekey.HMACKey || h.localOnly {
		return nil
	}
	return fmt.Errorf("%s is the example's, published with this module: anyone can sign resets with it; "+
		"make a key of your own (openssl rand -base64 64 | tr -d '\\n') and give the gateway's forward the same, "+
		"or listen only on this machine (bind 127.0.0.1)", field)
}

// leastMaxSkew is the least max_skew a configuration may give: a shorter
// one is a mistake, most often a JSON duration written as a bare number,
// which caddy.Duration counts in nanoseconds.
const leastMaxSkew = time.Second

// UnmarshalJSON reads the verifier's JSON as Caddy does, unknown fields
// refused, and names max_skew when it does not parse, which
// caddy.Duration's own error leaves out.
func (h *Handler) UnmarshalJSON(b []byte) error {
	type plain Handler // without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode((*plain)(h))
	if err == nil {
		return nil
	}
	var fields struct {
		MaxSkew json.RawMessage `json:"max_skew"`
	}
	var d caddy.Duration
	if json.Unmarshal(b, &fields) == nil && fields.MaxSkew != nil {
		if derr := json.Unmarshal(fields.MaxSkew, &d); derr != nil {
			return fmt.Errorf(`max_skew: %w; a duration is a string such as "60s" or "2m"`, derr)
		}
	}
	return err
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	var errs []error
	if h.KeyID == "" {
		errs = append(errs, errors.New("key_id: required"))
	}
	if (h.HMACKey == "") == (h.Ed25519PublicKey == "") {
		errs = append(errs, errors.New("give exactly one of hmac_key and ed25519_public_key"))
	}
	errs = append(errs, h.checkExampleKey("hmac_key", h.HMACKey))
	seen := map[string]bool{h.KeyID: true}
	for i, k := range h.Keys {
		switch {
		case k.KeyID == "":
			errs = append(errs, fmt.Errorf("key %d: key_id: required", i+1))
		case seen[k.KeyID]:
			errs = append(errs, fmt.Errorf("key %q: key_id given twice", k.KeyID))
		}
		seen[k.KeyID] = true
		if (k.HMACKey == "") == (k.Ed25519PublicKey == "") {
			errs = append(errs, fmt.Errorf("key %q: give exactly one of hmac_key and ed25519_public_key", k.KeyID))
		}
		errs = append(errs, h.checkExampleKey(fmt.Sprintf("key %q: hmac_key", k.KeyID), k.HMACKey))
	}
	if h.MinPasswordLength < 0 {
		errs = append(errs, fmt.Errorf("min_password_length: %d is negative", h.MinPasswordLength))
	}
	if h.MaxSkew < 0 {
		errs = append(errs, fmt.Errorf("max_skew: %s is negative", time.Duration(h.MaxSkew)))
	} else if h.MaxSkew != 0 && time.Duration(h.MaxSkew) < leastMaxSkew {
		errs = append(errs, fmt.Errorf(`max_skew: %s is below the least of %s; in JSON a duration is a string such as "60s" (a bare number counts nanoseconds)`,
			time.Duration(h.MaxSkew), leastMaxSkew))
	}
	return errors.Join(errs...)
}

// ServeHTTP reads the body, verifies the signature and, if it holds, passes
// the request with its body intact to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			refuse(w, errTooLarge)
			return nil
		}
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
	}

	method, path := verifyTarget(r)
	account, err := h.verifier.Verify(r.Context(), r.Header, method, path, body, h.clock.Now())
	if err != nil {
		// The error names the reason and holds no key, signature or body.
		fields := []zap.Field{
			zap.Error(err),
			zap.String("client_ip", clientIP(r)),
			zap.String("method", method),
			zap.String("path", path),
		}
		switch {
		case errors.Is(err, httpsig.ErrNonceCacheFull):
			h.logger.Error("refused a signed request: every nonce cache slot is in use", fields...)
			refuse(w, errVerifyBusy)
			return nil
		case errors.Is(err, httpsig.ErrNonceStore):
			// Fail closed: a request whose nonce cannot be recorded may
			// be a replay.
			h.logger.Error("refused a signed request: the nonce store does not answer", fields...)
			refuse(w, errNonceStoreDown)
			return nil
		}
		h.logger.Warn("refused a request without a valid gateway signature", fields...)
		refuse(w, errVerifyInvalid)
		return nil
	}
	h.logger.Debug("verified gateway signature", zap.String("account", account))
	if h.writer != nil {
		h.setPassword(w, r, account, body)
		return nil
	}

	r.Body = io.NopCloser(bytes.NewReader(body))
	return next.ServeHTTP(w, r)
}

// verifyTarget returns the method and path the request arrived with: the
// gateway signed those, and handlers before this one (rewrite, uri) may
// have changed r since.
func verifyTarget(r *http.Request) (method, path string) {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.Method, orig.URL.EscapedPath()
	}
	return r.Method, r.URL.EscapedPath()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
