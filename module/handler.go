package module

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/examplekey"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/pages"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the SMS recovery gateway. It owns the routes under PathPrefix:
// POST start, resend, verify and reset, and the web page at GET /. Requests
// outside PathPrefix pass to the next handler, with any client-sent
// signature headers removed.
type Handler struct {
	// PathPrefix is where the recovery routes live. Default: /recovery.
	PathPrefix string `json:"path_prefix,omitempty"`

	// SiteName names the service in messages and pages. Default: "Mail".
	SiteName string `json:"site_name,omitempty"`

	// PublicURL is the scheme, host and optional port the SMS links to and
	// its last line names, e.g. https://mail.example.com; an https one also
	// makes the pages' cookies Secure, even where Caddy sees plain HTTP
	// behind a load balancer that terminates TLS. The request's Host header
	// is never used instead, so that a forged one cannot point a link
	// elsewhere. In a Caddyfile it defaults to the site address when the
	// site block names exactly one host; otherwise, and in JSON, it is
	// required.
	PublicURL string `json:"public_url,omitempty"`

	// Language is the language of messages for accounts whose directory entry
	// names none: en, de, nl or fr. Default: en.
	Language string `json:"language,omitempty"`

	// DirectoryRaw is where phone numbers come from: a module of the
	// namespace http.handlers.sms_recovery.directories, named by its
	// "source", e.g. {"source": "file", "path": "phones.json"}, {"source":
	// "http", "url": ...}, {"source": "ldap", ...} or {"source": "sql",
	// ...}. Required.
	DirectoryRaw json.RawMessage `json:"directory,omitempty" caddy:"namespace=http.handlers.sms_recovery.directories inline_key=source"`

	// SenderRaw is how codes are sent: a module of the namespace
	// http.handlers.sms_recovery.senders, named by its "provider", e.g.
	// {"provider": "messagebird", "access_key": "{env.MESSAGEBIRD_ACCESS_KEY}",
	// "originator": "ExampleMail"}, or {"provider": "failover", "senders":
	// [...]} for senders tried in order. Default: {"provider": "outbox"}, the
	// development outbox file sms-outbox.jsonl, which holds live codes:
	// never use it in production.
	SenderRaw json.RawMessage `json:"sms,omitempty" caddy:"namespace=http.handlers.sms_recovery.senders inline_key=provider"`

	// SMSQueue is how many messages may wait for delivery. When the queue is
	// full, new messages are dropped and counted. Default: 1000.
	SMSQueue int `json:"sms_queue,omitempty"`

	// MessageTemplate replaces the text of the code message: a Go
	// text/template over .SiteName, .Code, .Minutes, .Link, .Host and
	// .Support, in plain GSM-7, that must use .Code.
	MessageTemplate string `json:"message_template,omitempty"`

	// NotifyOnReset sends the phone a notice after a successful reset, with
	// the support text. Default: true.
	NotifyOnReset *bool `json:"notify_on_reset,omitempty"`

	// NotifyOnLock sends the phone a short notice, with the support text,
	// when wrong codes or support (through the admin API) lock its
	// account's recovery: at most one per lock, within the SMS limits, so
	// that the owner learns someone is trying. Default: true.
	NotifyOnLock *bool `json:"notify_on_lock,omitempty"`

	// Notify sends e-mail notices after a successful reset, into the
	// account's mailbox and to its alternate address, each with a
	// single-use "this wasn't me" link that locks the account's recovery.
	// Default: none, only the SMS notice.
	Notify *Notify `json:"notify,omitempty"`

	// CodeLength is the number of digits in a code, 6 to 10. Default: 6.
	CodeLength int `json:"code_length,omitempty"`

	// CodeTTL is how long a code is valid. At least 1m, at most 1h.
	// Default: 5m.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`

	// MaxAttempts is how many codes may be tried per flow before it dies.
	// Default: 5.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// ResendInterval is the least time between two codes of one flow.
	// At least 1s. Default: 60s.
	ResendInterval caddy.Duration `json:"resend_interval,omitempty"`

	// TokenTTL is the lifetime of the reset token a correct code yields.
	// At least 1m, at most 24h. Default: 10m.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// AllowedCountries lists ISO 3166 alpha-2 regions whose numbers may get
	// an SMS. Default: all.
	AllowedCountries []string `json:"allowed_countries,omitempty"`

	// Limits caps events per scope: start_ip, start_account, start_phone,
	// verify_ip and sms_global. A scope not named keeps its default
	// (10/1h, 3/1h, 3/1h, 50/1h and 1000/1h). A window is at least 1s.
	Limits map[string]Limit `json:"limits,omitempty"`

	// SMSShare divides sms_global among client networks and destination
	// countries. Default: 10% per network (an IPv4 /24, an IPv6 /48),
	// the countries undivided.
	SMSShare *SMSShare `json:"sms_share,omitempty"`

	// SMSSpend prices codes and caps their cost per day and month.
	// Default: no ceiling.
	SMSSpend *SMSSpend `json:"sms_spend,omitempty"`

	// Lockout locks an account's recovery (never its mailbox) after that
	// many wrong codes across its flows. Window and duration are at least
	// 1s. Default: 5 in 1h locks for 30m.
	Lockout *Threshold `json:"lockout,omitempty"`

	// IPBlock blocks a client IP (or IPv6 /64) from the recovery routes after
	// that many wrong codes across accounts. Window and duration are at
	// least 1s. Default: 20 in 1h blocks for 1h.
	IPBlock *Threshold `json:"ip_block,omitempty"`

	// PrefixBreaker blocks the codes to a destination prefix whose codes
	// go out but are not entered: SMS traffic pumping. Default: on, 100
	// codes in 24h with at most 5% entered block a prefix for 1h, then
	// 24h, and the third time until support lifts it.
	PrefixBreaker *PrefixBreaker `json:"prefix_breaker,omitempty"`

	// Support tells a locked-out person how to reach a human. It is shown on
	// lock pages and sent after a reset.
	Support string `json:"support,omitempty"`

	// Secrets key the hashes of codes and tokens: base64 of at least 32
	// random bytes each, newest first; the first hashes, all verify.
	// Default: a random secret per process, which suits memory storage only.
	// Required with Redis storage.
	Secrets []string `json:"secrets,omitempty"`

	// PasswordMinLength is the shortest new password the reset page accepts.
	// The upstream keeps its own rules; this only spares a round trip.
	// Default: 12.
	PasswordMinLength int `json:"password_min_length,omitempty"`

	// Templates is a directory whose *.html files replace the built-in page
	// templates of the same name.
	Templates string `json:"templates,omitempty"`

	// StorageRaw is where state lives: a module of the namespace
	// http.handlers.sms_recovery.storage, named by its "backend", e.g.
	// {"backend": "redis", "url": "redis://127.0.0.1:6379/0"}. Default:
	// {"backend": "memory"}, with 100000 entries.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=http.handlers.sms_recovery.storage inline_key=backend"`

	// Forward signs the verified reset passed to the next handler. Required.
	Forward *Forward `json:"forward,omitempty"`

	// DeliveryReports configures the delivery reports providers send back,
	// which are counted per provider, country and status in
	// caddy_sms_recovery_sms_delivery_reports_total; a report without a
	// valid signature is answered 403 and counted in
	// caddy_sms_recovery_sms_delivery_reports_refused_total. Kannel's
	// reports are taken without it. Set secret for reports to outlive a
	// restart: a report URL is signed with it.
	DeliveryReports *DeliveryReports `json:"delivery_reports,omitempty"`

	// LogAccounts says how the security events' log lines and Caddy events
	// name the account: "hashed" gives only its keyed hash, in the field
	// account_hash: 16 hex digits of an HMAC-SHA256 under the newest
	// secret, the same on every instance that shares the secret, which
	// support finds by hashing a known account (docs/operations.md) and
	// which no one without the secret can tie to an account. "clear" adds
	// the account itself, in the field account: the logs, and whatever
	// ships or keeps them, then hold who asked to recover a password, and
	// when, from where. Without a secret the hash changes at each restart
	// and differs between instances. Default: hashed.
	LogAccounts string `json:"log_accounts,omitempty"`

	// TraceTTL is how long support can trace a flow or a refusal by the
	// reference its answer showed (caddy sms-recovery trace): its trail,
	// which holds times, outcomes, the masked phone number, the client
	// address, the account's keyed hash (the account itself only with
	// log_accounts clear) and never a code, a token or a password, is kept
	// in the storage for this long after its last event. At least 1h, at
	// most 400d. Default: 30d.
	TraceTTL caddy.Duration `json:"trace_ttl,omitempty"`

	// HandleErrors, when true, returns the JSON API's refusals to Caddy as
	// errors with their status (caddyhttp.Error), after setting their
	// headers (Retry-After, RateLimit-*, Allow), instead of answering the
	// JSON body of SPEC §4, so that the site's handle_errors routes answer
	// them; {http.sms_recovery.error}, {http.sms_recovery.retry_after} and
	// {http.sms_recovery.scope} say what was refused, and
	// {http.error.message} is the body's message. Clients of the API then
	// get whatever those routes answer, and a site without them answers
	// the bare status. The pages keep their own problem page. Default:
	// false, the JSON body.
	HandleErrors bool `json:"handle_errors,omitempty"`

	pages         *pages.Set
	pageRand      io.Reader   // for CSRF tokens
	traceRand     io.Reader   // for the references of refusals with no flow
	cookieOptions pageCookies // the pages' cookie names and attributes, from public_url
	svc           *recovery.Service
	guard         *limiter.Guard
	signer        *httpsig.Signer
	store         *pooledStore
	dir           recovery.Directory
	phones        *loadedPhones // what the directory's last version held, for the gauges
	closers       []func() error
	logger        *zap.Logger
	// outageLogger logs a failing dependency once per outageLogInterval,
	// not once per request: an outage must not flood the logs.
	outageLogger *zap.Logger
	observer     *observer
	clock        recovery.Clock // the flows' and limits' time; nil: the wall clock
	reports      *report.URLs   // signs the report URLs senders hand out, and checks Kannel's reports
	birdKeys     [][]byte       // DeliveryReports.BirdSecrets, decoded
	prefix       string
	realm        string // binds flows and tokens to the key the upstream trusts
	// mailSleep waits between tries of a notice; nil: a timer (tests
	// shorten it).
	mailSleep func(ctx context.Context, d time.Duration) error
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sms_recovery",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Defaults.
const (
	defaultPathPrefix     = "/recovery"
	defaultSiteName       = "Mail"
	defaultLanguage       = "en"
	defaultCodeLength     = 6
	defaultCodeTTL        = 5 * time.Minute
	defaultMaxAttempts    = 5
	defaultResendInterval = 60 * time.Second
	defaultTokenTTL       = 10 * time.Minute
	defaultQueueSize      = 1000
	maxBodyBytes          = 64 << 10

	defaultPasswordMinLength = 12
)

// The values of log_accounts.
const (
	logAccountsHashed = "hashed"
	logAccountsClear  = "clear"
)

// Limit scopes, as named in the Caddyfile.
var limitScopes = []string{"start_ip", "start_account", "start_phone", "verify_ip", "sms_global"}

// processSecret keys hashes when no secret is configured. It is made once per
// process so that flows survive a config reload.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading randomness: %v", err))
	}
	return b
})

func (h *Handler) fillDefaults() {
	if h.PathPrefix == "" {
		h.PathPrefix = defaultPathPrefix
	}
	if h.SiteName == "" {
		h.SiteName = defaultSiteName
	}
	if h.Language == "" {
		h.Language = defaultLanguage
	}
	if h.CodeLength == 0 {
		h.CodeLength = defaultCodeLength
	}
	if h.CodeTTL == 0 {
		h.CodeTTL = caddy.Duration(defaultCodeTTL)
	}
	if h.MaxAttempts == 0 {
		h.MaxAttempts = defaultMaxAttempts
	}
	if h.ResendInterval == 0 {
		h.ResendInterval = caddy.Duration(defaultResendInterval)
	}
	if h.TokenTTL == 0 {
		h.TokenTTL = caddy.Duration(defaultTokenTTL)
	}
	// The defaults are modules like any other, loaded the same way.
	if h.SenderRaw == nil {
		h.SenderRaw = json.RawMessage(`{"provider": "outbox"}`)
	}
	if h.SMSQueue == 0 {
		h.SMSQueue = defaultQueueSize
	}
	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(`{"backend": "memory"}`)
	}
	if h.PasswordMinLength == 0 {
		h.PasswordMinLength = defaultPasswordMinLength
	}
	if h.NotifyOnReset == nil {
		on := true
		h.NotifyOnReset = &on
	}
	if h.NotifyOnLock == nil {
		on := true
		h.NotifyOnLock = &on
	}
	if h.LogAccounts == "" {
		h.LogAccounts = logAccountsHashed
	}
	if h.TraceTTL == 0 {
		h.TraceTTL = caddy.Duration(defaultTraceTTL)
	}
	if h.Notify != nil {
		h.Notify.fillDefaults()
	}
}

// Validate checks the configuration; every message names the directive.
func (h *Handler) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(h.PublicURL != "", "public_url: required: the Caddyfile's site address names no single host, or the config is JSON, which has no site address: set public_url to the address people use, such as https://mail.example.com, so that SMS links cannot follow a forged Host header")
	if h.PublicURL != "" {
		if err := checkPublicURL(h.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("public_url: %q %w", h.PublicURL, err))
		}
	}
	check(strings.HasPrefix(h.PathPrefix, "/") && !strings.HasSuffix(h.PathPrefix, "/") || h.PathPrefix == "/",
		"path_prefix: %q must start with / and not end with one", h.PathPrefix)
	check(h.CodeLength >= 6 && h.CodeLength <= 10, "code_length: %d is outside 6..10", h.CodeLength)
	errs = append(errs, atLeast("code_ttl", h.CodeTTL, leastCodeTTL))
	check(time.Duration(h.CodeTTL) <= time.Hour, "code_ttl: %s is more than 1h", time.Duration(h.CodeTTL))
	check(h.MaxAttempts >= 1 && h.MaxAttempts <= 20, "max_attempts: %d is outside 1..20", h.MaxAttempts)
	check(h.PasswordMinLength >= 1 && h.PasswordMinLength <= 128, "password_min_length: %d is outside 1..128", h.PasswordMinLength)
	errs = append(errs, atLeast("resend_interval", h.ResendInterval, leastResendInterval))
	errs = append(errs, atLeast("token_ttl", h.TokenTTL, leastTokenTTL))
	errs = append(errs, atLeast("trace_ttl", h.TraceTTL, leastTraceTTL))
	check(time.Duration(h.TraceTTL) <= mostTraceTTL, "trace_ttl: %s is more than 400d", time.Duration(h.TraceTTL))
	check(time.Duration(h.TokenTTL) <= 24*time.Hour, "token_ttl: %s is more than 24h", time.Duration(h.TokenTTL))
	errs = append(errs, h.validateLimits()...)
	errs = append(errs, h.PrefixBreaker.validate()...)
	errs = append(errs, h.validateBudget())
	// Provision loads the directory, which frees its raw config.
	check(h.DirectoryRaw != nil || h.dir != nil, "directory: required (directory file <path>, directory http <url>, directory ldap <url> {...}, directory sql postgres|mysql <dsn> { query ... }, or another directory module)")
	check(h.SMSQueue > 0, "sms_queue: must be positive")
	if err := h.checkLanguage(); err != nil {
		errs = append(errs, err)
	}
	check(h.LogAccounts == logAccountsHashed || h.LogAccounts == logAccountsClear,
		"log_accounts: %q is neither %s nor %s", h.LogAccounts, logAccountsHashed, logAccountsClear)
	for i, s := range h.Secrets {
		b, err := base64.StdEncoding.DecodeString(s)
		check(err == nil && len(b) >= recovery.MinSecretLen, "secret: value %d is not base64 of at least %d bytes", i+1, recovery.MinSecretLen)
	}
	if dr := h.DeliveryReports; dr != nil {
		for i, s := range dr.BirdSecrets {
			_, err := report.BirdSecret(s)
			check(err == nil, "delivery_reports: bird_secret: value %d %v", i+1, err)
		}
	}
	if err := h.Notify.validate(); err != nil {
		errs = append(errs, err)
	}
	check(h.Forward != nil, "forward: required (key_id and hmac_key or ed25519_key)")
	if f := h.Forward; f != nil {
		check(f.KeyID != "", "forward: key_id is required")
		check((f.HMACKey == "") != (f.Ed25519Key == ""), "forward: give exactly one of hmac_key or ed25519_key")
		check(f.Path == "" || strings.HasPrefix(f.Path, "/"), "forward: path %q must start with /", f.Path)
		check(f.HMACKey != examplekey.HMACKey || servesLoopbackOnly(h.PublicURL),
			"forward: hmac_key is the example's, published with this module: anyone can sign resets with it; make a key of your own (openssl rand -base64 64), or serve only localhost")
		seen := make(map[string]bool, len(f.Fields))
		for i, name := range f.Fields {
			check(name != "", "forward: fields: name %d is empty", i+1)
			check(name != tokenField, "forward: fields: %q never reaches the upstream and cannot be allowed", name)
			check(name == "" || !seen[name], "forward: fields: %q is named twice", name)
			seen[name] = true
		}
	}
	return errors.Join(errs...)
}

// checkPublicURL says what is wrong with a public URL, if anything: it must
// be http or https with a host, and hold no user, query or fragment, which
// a link to the recovery page cannot carry.
func checkPublicURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL: %w", errors.Unwrap(err))
	case u.Scheme != "https" && u.Scheme != "http" || u.Opaque != "":
		return errors.New("must be an http or https URL, e.g. https://mail.example.com")
	case u.Hostname() == "" || strings.ContainsAny(u.Hostname(), "*{}"):
		return errors.New("must name a host")
	case u.User != nil:
		return errors.New("must not hold a user")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#"):
		return errors.New("must not hold a query or a fragment")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Cleanup stops the SMS queue, delivering what it can, and releases the store.
func (h *Handler) Cleanup() error {
	var errs []error
	for i := len(h.closers) - 1; i >= 0; i-- {
		errs = append(errs, h.closers[i]())
	}
	return errors.Join(errs...)
}

// checkLanguage refuses a language without built-in texts, as the
// language's mistake: Provision validates before it reads the template.
func (h *Handler) checkLanguage() error {
	lang, _, _ := strings.Cut(strings.ToLower(h.Language), "-")
	if h.Language == "" || slices.Contains(recovery.Languages(), lang) {
		return nil
	}
	return fmt.Errorf("language: no built-in texts for %q (built in: %s)", h.Language, strings.Join(recovery.Languages(), ", "))
}

// servesLoopbackOnly reports whether publicURL names this machine only:
// localhost (or a name under it) or a loopback address.
func servesLoopbackOnly(publicURL string) bool {
	u, err := url.Parse(publicURL)
	return err == nil && examplekey.LoopbackHost(u.Hostname())
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
