package module

import (
	"context"
	"errors"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// metrics are created once per process and registered with the registry of
// every config that loads the handler, so counts survive a reload.
type metrics struct {
	events   *prometheus.CounterVec
	sms      *prometheus.CounterVec
	requests *prometheus.CounterVec
}

var processMetrics = sync.OnceValue(func() *metrics {
	const ns, sub = "caddy", "sms_recovery"
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Security events of the recovery flow, by event and scope or reason.",
		}, []string{"site", "event", "scope"}),
		sms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sms_total",
			Help: "SMS delivery outcomes, by kind of message and result.",
		}, []string{"site", "kind", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "responses_total",
			Help: "Answers of the recovery API, by route and error code (ok for success).",
		}, []string{"site", "route", "code"}),
	}
})

func (m *metrics) register(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{m.events, m.sms, m.requests} {
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
// Nothing it receives holds a code, a token or a full phone number.
type observer struct {
	site    string
	logger  *zap.Logger
	metrics *metrics
	events  *caddyevents.App
	ctx     caddy.Context
}

func newObserver(ctx caddy.Context, site string, logger *zap.Logger) (*observer, error) {
	m := processMetrics()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	o := &observer{site: site, logger: logger, metrics: m, ctx: ctx}
	app, err := ctx.App("events")
	if err != nil {
		return nil, err
	}
	o.events = app.(*caddyevents.App)
	return o, nil
}

// eventLevel says how loud each event is in the log.
func eventLevel(name string) zapcore.Level {
	switch name {
	case recovery.EventAccountLocked, recovery.EventIPBlocked, recovery.EventSMSFailed, recovery.EventResetFailed:
		return zapcore.WarnLevel
	default:
		return zapcore.InfoLevel
	}
}

// Observe logs, counts and emits one security event.
func (o *observer) Observe(_ context.Context, e recovery.Event) {
	label := e.Scope
	if label == "" {
		label = e.Reason
	}
	o.metrics.events.WithLabelValues(o.site, e.Name, label).Inc()
	fields := []zap.Field{zap.String("event", e.Name), zap.String("account", e.Account), zap.String("client_ip", e.ClientIP)}
	data := map[string]any{"account": e.Account, "client_ip": e.ClientIP, "site": o.site}
	add := func(key, v string) {
		if v != "" {
			fields = append(fields, zap.String(key, v))
			data[key] = v
		}
	}
	add("flow", e.FlowRef)
	add("phone", e.Phone)
	add("reason", e.Reason)
	add("scope", e.Scope)
	if ce := o.logger.Check(eventLevel(e.Name), "security event"); ce != nil {
		ce.Write(fields...)
	}
	if o.events != nil {
		o.events.Emit(o.ctx, "sms_recovery_"+e.Name, data)
	}
}

// deliveryOutcome reports what became of a queued SMS.
func (o *observer) deliveryOutcome(out sms.Outcome) {
	o.metrics.sms.WithLabelValues(o.site, out.Kind, string(out.Result)).Inc()
	fields := []zap.Field{
		zap.String("event", "sms_"+string(out.Result)),
		zap.String("kind", out.Kind),
		zap.String("phone", out.Phone),
		zap.String("reference", out.Reference),
		zap.Int("attempts", out.Attempts),
	}
	if out.Err != nil {
		fields = append(fields, zap.Error(out.Err))
	}
	level := zapcore.InfoLevel
	if out.Result != sms.ResultSent {
		level = zapcore.WarnLevel
	}
	if ce := o.logger.Check(level, "sms delivery"); ce != nil {
		ce.Write(fields...)
	}
	if o.events != nil {
		o.events.Emit(o.ctx, "sms_recovery_sms_"+string(out.Result), map[string]any{
			"site": o.site, "kind": out.Kind, "phone": out.Phone, "reference": out.Reference,
		})
	}
}
