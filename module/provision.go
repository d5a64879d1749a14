package module

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/admin"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/httpsig"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/clock"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/placeholder"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// Provision fills defaults and builds the flow's collaborators.
func (h *Handler) Provision(ctx caddy.Context) error {
	if h.logger == nil { // a test may have given one, to see the lines of the load
		h.logger = ctx.Logger()
	}
	h.outageLogger = h.logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, outageLogInterval, 1, 0)
	}))
	h.fillDefaults()
	if err := h.expandPlaceholders(); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		return err
	}
	if h.PathPrefix != "/" {
		h.prefix = h.PathPrefix
	}
	keys, err := h.keyring()
	if err != nil {
		return err
	}
	if h.observer, err = newObserver(ctx, h.SiteName, h.logger, keys, h.LogAccounts == logAccountsClear); err != nil {
		return fmt.Errorf("setting up metrics and events: %w", err)
	}
	if err := h.provisionSigner(); err != nil {
		return err
	}
	keys = keys.InRealm(h.realm)
	if h.store, err = h.loadStore(ctx); err != nil {
		return err
	}
	h.closers = append(h.closers, func() error { return releaseStore(h.store) })
	if h.traceRand == nil {
		h.traceRand = rand.Reader
	}
	if trails, ok := h.store.backend.(storage.Trails); ok {
		h.observer.trail = newTracer(trails, time.Duration(h.TraceTTL), traceQueue, clock.Real{}, h.outageLogger, h.observer.countTrace)
		h.closers = append(h.closers, h.observer.trail.close)
	}

	if h.clock == nil {
		h.clock = clock.Real{}
	}
	h.guard, err = limiter.New(h.limits(), h.store.backend, h.clock)
	if err != nil {
		return err
	}
	if w, ok := h.store.backend.(alarmWatcher); ok {
		h.closers = append(h.closers, w.Watch(h.observer.storeAlarm))
	}
	phones, err := h.loadPhonePolicy()
	if err != nil {
		return fmt.Errorf("allowed_countries: %w", err)
	}
	// A directory that holds all its numbers (file) has the policy check
	// them as it loads them, and unknown accounts then draw stand-ins from
	// a set checked here: neither kind parses a number at /start. What the
	// check finds is logged and kept for the gauges.
	var stopWatch func() error
	h.phones, stopWatch = h.observer.metrics.directories.watch(h.SiteName)
	h.closers = append(h.closers, stopWatch)
	dirCtx := directory.WithClock(directory.WithPhonePin(ctx, h.pinPhones(phones)), h.clock)
	if err := h.loadDirectory(dirCtx); err != nil {
		return err
	}
	if c, ok := h.dir.(recovery.PhonesChecked); ok && c.PhonesChecked() {
		phones.Pin(keys.StandInPhones())
	}
	h.provisionReports(keys)
	sender, err := h.sender(report.With(ctx, h.reports))
	if err != nil {
		return err
	}
	msgs, err := recovery.NewMessages(recovery.MessageConfig{DefaultLang: h.Language, CodeTemplate: h.MessageTemplate})
	if err != nil {
		return fmt.Errorf("message_template: %w", err)
	}
	mailQueue, err := h.provisionNotify()
	if err != nil {
		return err
	}
	cfg := recovery.Config{
		CodeLength:     h.CodeLength,
		CodeTTL:        time.Duration(h.CodeTTL),
		MaxAttempts:    h.MaxAttempts,
		ResendInterval: time.Duration(h.ResendInterval),
		TokenTTL:       time.Duration(h.TokenTTL),
		// A reset holds its token for as long as the token lives: however
		// slow the upstream, no second reset with it can start meanwhile.
		// A hold is released as soon as the upstream answers; only a crash
		// in between leaves it, and then the person starts again.
		TokenLease:    time.Duration(h.TokenTTL),
		SiteName:      h.SiteName,
		Support:       h.Support,
		PathPrefix:    h.prefix,
		NotifyOnReset: *h.NotifyOnReset,
		NotifyOnLock:  *h.NotifyOnLock,
		DefaultLang:   h.Language,
		PrefixDigits:  h.PrefixBreaker.digits(),
	}
	h.notifyConfig(&cfg)
	deps := recovery.Deps{
		Store:     h.store.backend,
		Directory: h.dir,
		Phones:    phones,
		Sender:    sender,
		Guard:     h.guard,
		Observer:  h.observer,
		Messages:  msgs,
		Keys:      keys,
		Clock:     h.clock,
		Rand:      rand.Reader,
		Locker:    h.guard,
	}
	if mailQueue != nil {
		deps.Mailer = mailQueue
	}
	h.svc, err = recovery.New(cfg, deps)
	if err != nil {
		return err
	}
	h.closers = append(h.closers, admin.Register(h.store.key, h.guard, h.observer, h.svc, h.store.backend))
	if err := h.provisionPages(); err != nil {
		return err
	}
	h.logReady()
	return nil
}

// logReady says, once per provisioned handler, which release serves the
// recovery routes and which limits they enforce: a person trying the demo
// who meets a 429 or a 423 learns here why, and how to lift a lock.
// With memory storage it also gives the soft memory limit the storage's
// bounds set (memory.SoftMemoryLimit), in bytes.
func (h *Handler) logReady() {
	fields := []zap.Field{
		zap.String("version", version.Version),
		zap.String("site", h.SiteName),
		zap.String("path_prefix", h.PathPrefix),
		zap.String("limits", limitsSummary(h.limits())),
		zap.String("hint", "a 429 or 423 comes from these limits: raise them with limit, lockout and ip_block; "+
			"list and lift locks with 'caddy sms-recovery locks' and 'caddy sms-recovery unlock <account>'"),
	}
	if limit, ok := memory.SoftMemoryLimit(); ok {
		fields = append(fields, zap.Int64("go_memory_limit", limit))
	}
	h.logger.Info("sms recovery ready", fields...)
}

// limitsSummary writes the limits of c on one line.
func limitsSummary(c limiter.Config) string {
	rate := func(r limiter.Rate) string { return fmt.Sprintf("%d/%s", r.Events, shortDuration(r.Window)) }
	b := "prefix_breaker off"
	if !c.Breaker.Off {
		b = fmt.Sprintf("prefix_breaker after %d codes in %s with at most %d%% entered", c.Breaker.MinSent,
			shortDuration(c.Breaker.Window), c.Breaker.MaxEntered)
	}
	return fmt.Sprintf("start_ip %s, start_account %s, start_phone %s, verify_ip %s, sms_global %s; %s; %s; "+
		"lockout after %d wrong codes in %s for %s; ip_block after %d in %s for %s; %s",
		rate(c.StartIP), rate(c.StartAccount), rate(c.StartPhone), rate(c.VerifyIP), rate(c.SMSGlobal),
		sharesSummary(c.Shares), spendSummary(c.Spend),
		c.Lockout.Failures, shortDuration(c.Lockout.Window), shortDuration(c.Lockout.Duration),
		c.IPBlock.Failures, shortDuration(c.IPBlock.Window), shortDuration(c.IPBlock.Duration), b)
}

// shortDuration writes 1h and 30m rather than 1h0m0s and 30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// expandPlaceholders replaces global placeholders such as
// {env.RECOVERY_SECRET} in the gateway's own options that hold secrets,
// addresses and paths, so that none of them need be written into the
// config; a placeholder that expands to nothing is an error that says so.
// Each guest module expands its own.
func (h *Handler) expandPlaceholders() error {
	repl := caddy.NewReplacer()
	var errs []error
	expand := func(field string, s *string) {
		errs = append(errs, placeholder.Expand(repl, field, s))
	}
	for i := range h.Secrets {
		expand(fmt.Sprintf("secret: value %d", i+1), &h.Secrets[i])
	}
	if f := h.Forward; f != nil {
		expand("forward: hmac_key", &f.HMACKey)
		expand("forward: ed25519_key", &f.Ed25519Key)
	}
	expand("public_url", &h.PublicURL)
	if dr := h.DeliveryReports; dr != nil {
		for i := range dr.BirdSecrets {
			expand(fmt.Sprintf("delivery_reports: bird_secret: value %d", i+1), &dr.BirdSecrets[i])
		}
	}
	return errors.Join(errs...)
}

// outageLogInterval is how often the same failure of a dependency is logged.
const outageLogInterval = 10 * time.Second

func (h *Handler) provisionSigner() error {
	f := h.Forward
	var (
		err   error
		trust []byte // what the upstream trusts: the key it checks with
	)
	if f.HMACKey != "" {
		key, derr := base64.StdEncoding.DecodeString(f.HMACKey)
		if derr != nil {
			return fmt.Errorf("forward: hmac_key is not base64: %w", derr)
		}
		h.signer, err = httpsig.NewHMACSigner(f.KeyID, key, rand.Reader)
		trust = key
	} else {
		key, kerr := httpsig.LoadEd25519PrivateKey(f.Ed25519Key)
		if kerr != nil {
			return fmt.Errorf("forward: ed25519_key: %w", kerr)
		}
		h.signer, err = httpsig.NewEd25519Signer(f.KeyID, key, rand.Reader)
		trust = key.Public().(ed25519.PublicKey)
	}
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	// Flows and tokens are good for the upstream that trusts this key and
	// no other, even where handlers share a store and a secret.
	sum := sha256.Sum256(append([]byte("sms-recovery realm\x00"), trust...))
	h.realm = hex.EncodeToString(sum[:16])
	return nil
}

func (h *Handler) keyring() (*recovery.Keyring, error) {
	if len(h.Secrets) == 0 {
		return recovery.NewKeyring(processSecret())
	}
	secrets := make([][]byte, len(h.Secrets))
	for i, s := range h.Secrets {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("secret: value %d is not base64", i+1)
		}
		secrets[i] = b
	}
	k, err := recovery.NewKeyring(secrets...)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return k, nil
}

// limits applies the configured limits over the defaults.
func (h *Handler) limits() limiter.Config {
	c := limiter.DefaultConfig()
	scopes := map[string]*limiter.Rate{
		"start_ip": &c.StartIP, "start_account": &c.StartAccount, "start_phone": &c.StartPhone,
		"verify_ip": &c.VerifyIP, "sms_global": &c.SMSGlobal,
	}
	for name, l := range h.Limits {
		*scopes[name] = limiter.Rate{Events: l.Events, Window: time.Duration(l.Window)}
	}
	if t := h.Lockout; t != nil {
		c.Lockout = limiter.Threshold{Failures: t.Failures, Window: time.Duration(t.Window), Duration: time.Duration(t.Duration)}
	}
	if t := h.IPBlock; t != nil {
		c.IPBlock = limiter.Threshold{Failures: t.Failures, Window: time.Duration(t.Window), Duration: time.Duration(t.Duration)}
	}
	c.Breaker = h.PrefixBreaker.breaker()
	c.Shares, c.Spend, _ = h.budget() // validated before
	return c
}

// phonePolicies holds the phone policies of every handler in this process,
// keyed by their allowed countries: a config reload finds the numbers its
// directory checked under the config before, and checks only new ones
// (a directory file of 200,000 numbers takes some 4 s to check here).
var phonePolicies = caddy.NewUsagePool()

// pooledPolicy is one entry of phonePolicies.
type pooledPolicy struct{ *directory.PhonePolicy }

func (pooledPolicy) Destruct() error { return nil }

// loadPhonePolicy returns the pooled policy for the handler's allowed
// countries, released with the handler.
func (h *Handler) loadPhonePolicy() (*directory.PhonePolicy, error) {
	regions := make([]string, len(h.AllowedCountries))
	for i, c := range h.AllowedCountries {
		regions[i] = strings.ToUpper(strings.TrimSpace(c))
	}
	slices.Sort(regions)
	key := "phones:" + strings.Join(slices.Compact(regions), ",")
	v, _, err := phonePolicies.LoadOrNew(key, func() (caddy.Destructor, error) {
		p, err := directory.NewPhonePolicy(h.AllowedCountries)
		return pooledPolicy{p}, err
	})
	if err != nil {
		return nil, err
	}
	h.closers = append(h.closers, func() error { _, err := phonePolicies.Delete(key); return err })
	return v.(pooledPolicy).PhonePolicy, nil
}

// loadDirectory loads the directory module, through a context that
// carries the gateway's request signer for the modules that send requests
// (directory http signs its lookups like the forwarded reset). Caddy cleans
// the module up, closing its connections, when the config unloads.
func (h *Handler) loadDirectory(ctx caddy.Context) error {
	sign := func(r *http.Request) error {
		account := r.URL.Query().Get("account")
		return h.signer.Sign(r.Header, r.Method, r.URL.EscapedPath(), nil, account, time.Now())
	}
	mod, err := directory.WithRequestSigner(ctx, sign).LoadModule(h, "DirectoryRaw")
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	dir, ok := mod.(recovery.Directory)
	if !ok {
		return fmt.Errorf("directory: module %s is not a directory (it has no Lookup method)", caddy.GetModuleID(mod))
	}
	h.dir = dir
	return nil
}

func (h *Handler) now() time.Time { return time.Now() }
