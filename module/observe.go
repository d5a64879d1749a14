package module

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/limiter"
	mailer "github.com/caddy-sms-recovery/caddy-sms-recovery/mail"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/version"
)

// metrics are created once per process and registered with the registry of
// every config that loads the handler, so counts survive a reload.
type metrics struct {
	events      *prometheus.CounterVec
	sms         *prometheus.CounterVec
	tries       *prometheus.CounterVec
	queued      prometheus.GaugeFunc
	unavailable *prometheus.CounterVec
	circuitOpen prometheus.GaugeFunc
	buildInfo   *prometheus.GaugeVec
	tables      tablesCollector
	stateLost   *prometheus.CounterVec
	unsafe      *prometheus.CounterVec
	lostNow     prometheus.GaugeFunc
	// phoneRefused counts codes of real accounts dropped for their number;
	// directories counts the numbers of the directories that hold them all.
	phoneRefused *prometheus.CounterVec
	directories  *directoryCollector
	// reports and refused count the delivery reports taken and refused.
	reports  *prometheus.CounterVec
	refused  *prometheus.CounterVec
	prefixes *prometheus.CounterVec
	// traces counts support's trail entries by what became of them.
	traces *prometheus.CounterVec
	// mail counts the e-mail notices by outcome, mailTries their failed
	// tries, disputed the resets their owners disputed.
	mail      *prometheus.CounterVec
	mailTries *prometheus.CounterVec
	disputed  *prometheus.CounterVec
}

var processMetrics = sync.OnceValue(func() *metrics {
	const ns, sub = "caddy", "sms_recovery"
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Security events of the recovery flow, by event and the limit involved (scope), if any.",
		}, []string{"site", "event", "scope"}),
		sms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_total",
			Help: "SMS delivery outcomes, by kind of message and result.",
		}, []string{"site", "kind", "result"}),
		tries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_tries_total",
			Help: "Tries of SMS at each provider, by its module name, its position in a failover (1 for the first choice or a lone sender; more is a fallback) and result: sent, rejected (the message refused), failed (not taken), circuit_open (not asked: its breaker was open).",
		}, []string{"site", "provider", "position", "result"}),
		// Queues are shared by every handler with the same SMS settings, so
		// this is one number for the process rather than one per site.
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_queue_length",
			Help: "SMS waiting for a delivery worker, across the queues of this process.",
		}, func() float64 {
			n := 0
			queues.Range(func(_, v any) bool {
				n += v.(*pooledQueue).queue.Len()
				return true
			})
			return float64(n)
		}),
		unavailable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "unavailable_total",
			Help: "Requests answered 503 because the storage or the phone directory could not answer, readiness probes included.",
		}, []string{"site"}),
		circuitOpen: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_circuit_open",
			Help: "SMS queues of this process whose circuit breaker is open: their provider kept failing and is being given a rest.",
		}, func() float64 {
			n := 0
			queues.Range(func(_, v any) bool {
				if v.(*pooledQueue).queue.CircuitOpen() {
					n++
				}
				return true
			})
			return float64(n)
		}),
		tables: newTablesCollector(ns, sub),
		phoneRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "phone_refused_total",
			Help: "Codes for real accounts not sent because the directory gave a number that may not get one, by reason " +
				"(national_format, invalid, country_not_allowed, not_mobile, premium_rate, shared_cost, toll_free, voip).",
		}, []string{"site", "reason"}),
		directories: newDirectoryCollector(ns, sub),
		stateLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_state_lost_total",
			Help: "Times the storage's server was found to have lost its state (restart without data, failover to a replica without it, flush, restore); recovery answers 503 until an operator acknowledges it.",
		}, []string{"site"}),
		// Only a block adds a series, and a block takes a window of codes
		// to a prefix: the prefixes are few.
		prefixes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "prefix_blocks_total",
			Help: "Blocks of a destination prefix whose codes were sent but too few entered (traffic pumping), by prefix and its country; list and lift them with caddy sms-recovery.",
		}, []string{"site", "prefix", "country"}),
		traces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "trace_entries_total",
			Help: "Entries of support's trails (caddy sms-recovery trace), by result: written to the store, dropped (the queue to the store was full) or failed (the store did not take them).",
		}, []string{"site", "result"}),
		unsafe: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_unsafe_server_total",
			Help: "Times the storage refused its server on connecting because it would forget state (no persistence, an evicting maxmemory-policy); recovery answers 503 meanwhile.",
		}, []string{"site"}),
		// Stores are shared by every handler with the same storage
		// settings, so this is one number for the process.
		lostNow: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "store_state_lost",
			Help: "Stores of this process whose server lost its state and that wait for an operator to acknowledge it (admin API DELETE /sms-recovery/store-loss).",
		}, func() float64 {
			n := 0
			stores.Range(func(_, v any) bool {
				if l, ok := v.(*pooledStore).backend.(alarmWatcher); ok {
					if _, lost := l.StateLoss(); lost {
						n++
					}
				}
				return true
			})
			return float64(n)
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_delivery_reports_total",
			Help: "Delivery reports from SMS providers, by provider, the recipient's country (ISO 3166 alpha-2) and what they say: delivered, failed, accepted (by a network, on its way) or pending.",
		}, []string{"site", "provider", "country", "status"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_delivery_reports_refused_total",
			Help: "Delivery reports refused, by provider and reason: forged (no valid signature, answered 403) or malformed (signed, but unreadable).",
		}, []string{"site", "provider", "reason"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "mail_total",
			Help: "E-mail notices of a reset, by kind (mailbox or alternate) and result: sent, rejected (refused for good by the server), retries_exhausted, queue_full or dropped.",
		}, []string{"site", "kind", "result"}),
		mailTries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "mail_tries_failed_total",
			Help: "Tries of an e-mail notice that failed (the mail server unreachable or answering 4xx), each retried while tries are left, by kind.",
		}, []string{"site", "kind"}),
		disputed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "reset_disputed_total",
			Help: "Resets whose owner used the not-me link of a notice: the account's recovery is locked until support lifts it.",
		}, []string{"site"}),
		buildInfo: func() *prometheus.GaugeVec {
			g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: ns, Subsystem: sub, Name: "build_info",
				Help: "Always 1; its version label is the release of caddy-sms-recovery in this binary.",
			}, []string{"version"})
			g.WithLabelValues(version.Version).Set(1)
			return g
		}(),
	}
})

// collectors are every metric of the handler.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.sms, m.tries, m.queued, m.unavailable, m.circuitOpen, m.buildInfo,
		m.stateLost, m.unsafe, m.lostNow, m.tables, m.phoneRefused, m.directories, m.reports, m.refused, m.prefixes, m.traces,
		m.mail, m.mailTries, m.disputed}
}

func (m *metrics) register(reg *prometheus.Registry) error {
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observer turns security events into log lines, metrics and Caddy events.
// Nothing it receives holds a code, a token or a full phone number; the
// account it names by its keyed hash (log_accounts), unless clearAccounts.
type observer struct {
	site          string
	siteValue     any // site, boxed once for the data of every event
	logger        *zap.Logger
	metrics       *metrics
	events        *caddyevents.App
	ctx           caddy.Context
	keys          *recovery.Keyring // hashes accounts: AccountRef
	clearAccounts bool              // log_accounts clear
	trail         *tracer           // support's trails; nil for a store without them
}

func newObserver(ctx caddy.Context, site string, logger *zap.Logger, keys *recovery.Keyring, clearAccounts bool) (*observer, error) {
	m := processMetrics()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	// A prefix's first block is an increase from zero that an alert can
	// see (deploy/prometheus, SMSRecoveryPrefixBlocked).
	m.events.WithLabelValues(site, recovery.EventPrefixBlocked, limiter.ScopeBreaker)
	o := &observer{site: site, siteValue: site, logger: logger, metrics: m, ctx: ctx, keys: keys, clearAccounts: clearAccounts}
	// Every reason starts at 0, so that rate() and increase() see the
	// first refusal of a site rather than a series that begins at 1.
	for _, reason := range directory.PhoneReasons() {
		m.phoneRefused.WithLabelValues(site, reason)
	}
	for _, result := range []string{traceWritten, traceDropped, traceFailed} {
		m.traces.WithLabelValues(site, result)
	}

	// The http app loads the events app before it provisions any handler,
	// so in a config this finds it. A context made without a config (tests)
	// has no apps, where ctx.App would dereference a nil config.
	app, err := ctx.AppIfConfigured("events")
	switch {
	case errors.Is(err, caddy.ErrNotConfigured):
	case err != nil:
		return nil, err
	default:
		o.events = app.(*caddyevents.App)
	}
	return o, nil
}

// eventLevel says how loud each event is in the log.
func eventLevel(e recovery.Event) zapcore.Level {
	switch e.Name {
	case storage.AlarmStateLost, storage.AlarmUnsafeServer:
		return zapcore.ErrorLevel
	case storage.AlarmLossAcknowledged:
		return zapcore.WarnLevel
	case recovery.EventAccountLocked, recovery.EventIPBlocked, recovery.EventRefused,
		recovery.EventSMSFailed, recovery.EventResetFailed, recovery.EventPrefixBlocked,
		recovery.EventResetDisputed, recovery.EventMailFailed:
		return zapcore.WarnLevel
	case recovery.EventSMSRefused:
		if e.Scope == "sms_global" { // the SMS budget is spent: real people get no code
			return zapcore.WarnLevel
		}
	}
	return zapcore.InfoLevel
}

// prefixed returns prefix+name, from names made once when name is one of
// the fixed set, so that an event does not build its names again.
func prefixed(names map[string]string, prefix, name string) string {
	if n, ok := names[name]; ok {
		return n
	}
	return prefix + name
}

// eventNames and smsNames hold the Caddy event names of the security events
// and the SMS outcomes; smsLogNames the event field of an outcome's log line.
var eventNames, smsNames, smsLogNames = func() (ev, smsEv, logs map[string]string) {
	ev, smsEv, logs = map[string]string{}, map[string]string{}, map[string]string{}
	for _, n := range []string{
		recovery.EventFlowStarted, recovery.EventCodeResent, recovery.EventSMSRefused, recovery.EventSMSFailed,
		recovery.EventWrongCode, recovery.EventFlowExhausted, recovery.EventCodeVerified, recovery.EventRateLimited,
		recovery.EventAccountLocked, recovery.EventIPBlocked, recovery.EventRefused, recovery.EventResetForwarded,
		recovery.EventResetFailed, recovery.EventStateFull, recovery.EventLockNotice, recovery.EventPrefixBlocked,
		recovery.EventResetDisputed, recovery.EventMailNotice, recovery.EventMailFailed,
	} {
		ev[n] = "sms_recovery_" + n
	}
	for _, r := range []sms.Result{
		sms.ResultSent, sms.ResultRejected, sms.ResultExhausted, sms.ResultExpired, sms.ResultDropped, sms.ResultRefused,
	} {
		smsEv[string(r)] = "sms_recovery_sms_" + string(r)
		logs[string(r)] = "sms_" + string(r)
	}
	return ev, smsEv, logs
}()

// kindValue returns the kind of a message as an event's data holds it:
// the kinds the flow sends are constants, which need no allocation.
func kindValue(kind string) any {
	switch kind {
	case "code":
		return "code"
	case "notice":
		return "notice"
	case "lock_notice":
		return "lock_notice"
	}
	return kind
}

// Observe logs, counts and emits one security event.
func (o *observer) Observe(_ context.Context, e recovery.Event) {
	// The scope names one of a fixed set of limits. The reason is free text
	// (an error's message, say) and would make a new series of every
	// variant, so it goes to the log and the Caddy event only.
	o.metrics.events.WithLabelValues(o.site, e.Name, e.Scope).Inc()
	if e.Name == recovery.EventSMSRefused && e.Cause != nil {
		if reason := directory.PhoneReason(e.Cause); reason != "" {
			o.metrics.phoneRefused.WithLabelValues(o.site, reason).Inc()
		}
	}
	country := "" // a prefix's, made once for the metric, the line and the event
	if e.Prefix != "" {
		country = recovery.PrefixCountry(e.Prefix)
	}
	if e.Name == recovery.EventPrefixBlocked {
		o.metrics.prefixes.WithLabelValues(o.site, e.Prefix, country).Inc()
	}
	if e.Name == recovery.EventResetDisputed {
		o.metrics.disputed.WithLabelValues(o.site).Inc()
	}
	ref := "" // the account's hash, made once for the line, the trail and the event
	if e.Trace != "" && o.trail != nil {
		if e.Account != "" {
			ref = o.keys.AccountRef(e.Account)
		}
		te := storage.TrailEntry{Ref: e.Trace, Event: e.Name, Scope: e.Scope, Reason: e.Reason, Phone: e.Phone,
			ClientIP: e.ClientIP, AccountHash: ref}
		if o.clearAccounts {
			te.Account = e.Account
		}
		o.trace(te)
	}
	if ce := o.logger.Check(eventLevel(e), "security event"); ce != nil {
		fields := make([]zap.Field, 0, 11)
		fields = append(fields, zap.String("event", e.Name), zap.String("site", o.site))
		if o.clearAccounts {
			fields = append(fields, zap.String("account", e.Account))
		}
		if e.Account != "" {
			if ref == "" {
				ref = o.keys.AccountRef(e.Account)
			}
			fields = append(fields, zap.String("account_hash", ref))
		}
		fields = append(fields, zap.String("client_ip", e.ClientIP))
		for _, f := range [...]struct{ key, v string }{
			{"flow", e.FlowRef}, {"phone", e.Phone}, {"reason", e.Reason}, {"scope", e.Scope},
			{"prefix", e.Prefix}, {"country", country},
		} {
			if f.v != "" {
				fields = append(fields, zap.String(f.key, f.v))
			}
		}
		ce.Write(fields...)
	}
	if o.events == nil {
		return
	}
	if name := prefixed(eventNames, "sms_recovery_", e.Name); o.events.ShouldEmit(name) {
		data := map[string]any{"client_ip": e.ClientIP, "site": o.siteValue}
		if o.clearAccounts {
			data["account"] = e.Account
		}
		if e.Account != "" {
			if ref == "" {
				ref = o.keys.AccountRef(e.Account)
			}
			data["account_hash"] = ref
		}
		for _, f := range [...]struct{ key, v string }{
			{"flow", e.FlowRef}, {"phone", e.Phone}, {"reason", e.Reason}, {"scope", e.Scope},
			{"prefix", e.Prefix}, {"country", country},
		} {
			if f.v != "" {
				data[f.key] = f.v
			}
		}
		o.events.Emit(o.ctx, name, data)
	}
}

// trace files e in support's trail of its reference, when the store keeps
// trails.
func (o *observer) trace(e storage.TrailEntry) {
	if o.trail == nil {
		return
	}
	e.Site = o.site
	o.trail.add(e)
}

// FlushTrails returns once the trail entries queued so far are in the
// store: the admin API calls it before it reads a trail.
func (o *observer) FlushTrails(ctx context.Context) error {
	if o.trail == nil {
		return nil
	}
	return o.trail.flush(ctx)
}

// countTrace counts n trail entries with result.
func (o *observer) countTrace(result string, n int) {
	o.metrics.traces.WithLabelValues(o.site, result).Add(float64(n))
}

// accountHashes returns what log lines name accounts by: their keyed
// hashes (account_hash).
func (o *observer) accountHashes(accounts []string) []string {
	hashes := make([]string, len(accounts))
	for i, a := range accounts {
		hashes[i] = o.keys.AccountRef(a)
	}
	return hashes
}

// alarmWatcher is a store that reports what it notices about its server
// (the Redis store): see storage.Alarm.
type alarmWatcher interface {
	Watch(fn func(storage.Alarm)) (stop func() error)
	StateLoss() (storage.Loss, bool)
}

// storeAlarm logs, counts and emits what the store noticed about its
// server, as a security event: a loss of state, a server refused, a loss
// acknowledged through another instance. Nothing in it names an account.
func (o *observer) storeAlarm(a storage.Alarm) {
	switch a.Kind {
	case storage.AlarmStateLost:
		o.metrics.stateLost.WithLabelValues(o.site).Inc()
	case storage.AlarmUnsafeServer:
		o.metrics.unsafe.WithLabelValues(o.site).Inc()
	}
	o.Observe(o.ctx, recovery.Event{Name: a.Kind, Reason: a.Detail})
}

// unavailable counts a request answered 503 because a dependency could not
// answer.
func (o *observer) unavailable() {
	o.metrics.unavailable.WithLabelValues(o.site).Inc()
}

// positions are the position labels of the first senders of a failover.
var positions = [...]string{"0", "1", "2", "3", "4"}

// deliveryTry counts a try of an SMS at a provider, and logs one that
// failed: the outcome of the message says only how its last try went.
func (o *observer) deliveryTry(t sms.Try) {
	position := strconv.Itoa(t.Position)
	if t.Position >= 0 && t.Position < len(positions) {
		position = positions[t.Position]
	}
	o.metrics.tries.WithLabelValues(o.site, t.Provider, position, string(t.Result)).Inc()
	if t.Result != sms.ResultFailed {
		return
	}
	if ce := o.logger.Check(zapcore.WarnLevel, "sms try failed"); ce != nil {
		fields := make([]zap.Field, 0, 7)
		fields = append(fields,
			zap.String("event", "sms_try_failed"),
			zap.String("site", o.site),
			zap.String("provider", t.Provider),
			zap.Int("position", t.Position),
			zap.String("reference", t.Reference))
		if t.Status != 0 {
			fields = append(fields, zap.Int("provider_status", t.Status))
		}
		fields = append(fields, zap.Error(t.Err))
		ce.Write(fields...)
	}
}

// deliveryOutcome reports what became of a queued SMS.
func (o *observer) deliveryOutcome(out sms.Outcome) {
	o.metrics.sms.WithLabelValues(o.site, out.Kind, string(out.Result)).Inc()
	if out.Trace != "" {
		te := storage.TrailEntry{Ref: out.Trace, Event: prefixed(smsLogNames, "sms_", string(out.Result)), Phone: out.Phone}
		if out.Kind != "code" {
			te.Reason = out.Kind
		}
		if out.Err != nil {
			te.Reason = strings.TrimPrefix(te.Reason+": "+out.Err.Error(), ": ")
		}
		o.trace(te)
	}
	level := zapcore.InfoLevel
	if out.Result != sms.ResultSent {
		level = zapcore.WarnLevel
	}
	if ce := o.logger.Check(level, "sms delivery"); ce != nil {
		fields := make([]zap.Field, 0, 9)
		fields = append(fields,
			zap.String("event", prefixed(smsLogNames, "sms_", string(out.Result))),
			zap.String("site", o.site),
			zap.String("kind", out.Kind),
			zap.String("phone", out.Phone),
			zap.String("reference", out.Reference),
			zap.Int("attempts", out.Attempts))
		if out.Status != 0 {
			fields = append(fields, zap.Int("provider_status", out.Status))
		}
		if out.Code != 0 {
			fields = append(fields, zap.Int("provider_code", out.Code))
		}
		if out.Err != nil {
			fields = append(fields, zap.Error(out.Err))
		}
		ce.Write(fields...)
	}
	if o.events != nil {
		name := prefixed(smsNames, "sms_recovery_sms_", string(out.Result))
		if !o.events.ShouldEmit(name) {
			return
		}
		o.events.Emit(o.ctx, name, map[string]any{
			"site": o.siteValue, "kind": kindValue(out.Kind), "phone": out.Phone, "reference": out.Reference,
		})
	}
}

// deliveryReport counts a provider's report on an SMS; one that is not
// about delivery is not counted.
func (o *observer) deliveryReport(r report.Report) {
	if r.Status == "" {
		return
	}
	country := cmp.Or(r.Country, "unknown")
	o.metrics.reports.WithLabelValues(o.site, r.Provider, country, string(r.Status)).Inc()
	if ce := o.logger.Check(zapcore.DebugLevel, "sms delivery report"); ce != nil {
		ce.Write(zap.String("site", o.site), zap.String("provider", r.Provider), zap.String("country", country),
			zap.String("status", string(r.Status)), zap.String("reference", r.Reference))
	}
	if o.events != nil && o.events.ShouldEmit(EventDeliveryReport) {
		o.events.Emit(o.ctx, EventDeliveryReport, map[string]any{
			"site": o.siteValue, "provider": r.Provider, "country": country, "status": string(r.Status), "reference": r.Reference,
		})
	}
}

// EventDeliveryReport is the Caddy event of a delivery report taken, with
// the site, provider, country, status and the message's reference.
const EventDeliveryReport = "sms_recovery_sms_delivery_report"

// reportRefused counts and logs a delivery report refused as forged or
// malformed. Many forged ones mean someone is trying to skew the counts.
func (o *observer) reportRefused(provider, reason, clientIP string, err error) {
	o.metrics.refused.WithLabelValues(o.site, provider, reason).Inc()
	o.logger.Warn("sms delivery report refused",
		zap.String("event", "sms_report_"+reason), zap.String("site", o.site), zap.String("provider", provider),
		zap.String("client_ip", clientIP), zap.Error(err))
}

// startMail makes the series of the e-mail notices and of disputed resets
// at 0, so that an alert sees their first increase.
func (o *observer) startMail() {
	m := o.metrics
	m.disputed.WithLabelValues(o.site)
	for _, kind := range []string{recovery.MailMailbox, recovery.MailAlternate} {
		m.mailTries.WithLabelValues(o.site, kind)
		for _, r := range []string{mailer.ResultSent, mailer.ResultExhausted, mailer.ResultRejected} {
			m.mail.WithLabelValues(o.site, kind, r)
		}
	}
}

// mailOutcome counts and logs what became of an e-mail notice. The address
// is masked: the queue never reports it in the clear.
func (o *observer) mailOutcome(out mailer.Outcome) {
	o.metrics.mail.WithLabelValues(o.site, out.Kind, out.Result).Inc()
	level := zapcore.InfoLevel
	if out.Result != mailer.ResultSent {
		level = zapcore.WarnLevel
	}
	if ce := o.logger.Check(level, "mail notice"); ce != nil {
		fields := []zap.Field{
			zap.String("event", "mail_"+out.Result), zap.String("site", o.site), zap.String("kind", out.Kind),
			zap.String("to", out.To), zap.String("reference", out.Reference), zap.Int("tries", out.Tries),
		}
		if out.Err != nil {
			fields = append(fields, zap.Error(out.Err))
		}
		ce.Write(fields...)
	}
	if o.events != nil {
		name := "sms_recovery_mail_" + out.Result
		if o.events.ShouldEmit(name) {
			o.events.Emit(o.ctx, name, map[string]any{
				"site": o.siteValue, "kind": out.Kind, "to": out.To, "reference": out.Reference, "tries": out.Tries,
			})
		}
	}
}

// mailTry counts and logs a failed try of an e-mail notice.
func (o *observer) mailTry(t mailer.Try) {
	o.metrics.mailTries.WithLabelValues(o.site, t.Kind).Inc()
	o.logger.Warn("mail try failed", zap.String("event", "mail_try_failed"), zap.String("site", o.site),
		zap.String("kind", t.Kind), zap.String("to", t.To), zap.Int("try", t.Try), zap.Error(t.Err))
}
