package integration

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/wake"
)

func init() {
	caddy.RegisterModule(smsSignal{})
	caddy.RegisterModule(reportSignal{})
}

// smsSignalHandler is the events handler that wakes tests waiting for an SMS.
const smsSignalHandler = "integration_sms_signal"

// smsOutcomeEvents are the Caddy events of every end a queued SMS can come
// to; the outbox line of a sent one is written before its event.
var smsOutcomeEvents = []string{
	"sms_recovery_sms_sent", "sms_recovery_sms_rejected", "sms_recovery_sms_retries_exhausted",
	"sms_recovery_sms_expired", "sms_recovery_sms_queue_full", "sms_recovery_sms_circuit_open",
	"sms_recovery_sms_dropped", "sms_recovery_sms_refused",
}

// smsSignal is an events handler that broadcasts every delivery outcome to
// the tests through delivered.
type smsSignal struct{}

func (smsSignal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "events.handlers." + smsSignalHandler,
		New: func() caddy.Module { return new(smsSignal) },
	}
}

func (smsSignal) Handle(_ context.Context, e caddy.Event) error {
	site, _ := e.Data["site"].(string)
	n, _ := outcomes.LoadOrStore(site, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	delivered.Broadcast()
	return nil
}

// outcomes counts the SMS outcomes of the run by the site_name of the
// gateway that queued them: a test counts those of its own site, not the
// late ones of a test before it.
var outcomes sync.Map // site name → *atomic.Int64

// outcomesOf returns how many SMS of site have had an outcome so far.
func outcomesOf(site string) int64 {
	n, ok := outcomes.Load(site)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

var _ caddyevents.Handler = (*smsSignal)(nil)

// delivered is broadcast on every SMS outcome.
var delivered = wake.New()

// reportSignalHandler is the events handler that wakes tests waiting for a
// delivery report.
const reportSignalHandler = "integration_report_signal"

// reportSignal is an events handler that broadcasts every delivery report
// the gateway takes through reported.
type reportSignal struct{}

func (reportSignal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "events.handlers." + reportSignalHandler,
		New: func() caddy.Module { return new(reportSignal) },
	}
}

func (reportSignal) Handle(context.Context, caddy.Event) error {
	reported.Broadcast()
	return nil
}

var _ caddyevents.Handler = (*reportSignal)(nil)

// reported is broadcast on every delivery report the gateway takes.
var reported = wake.New()
