package module

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory"
)

// phoneFix says how to write a directory's numbers so that they get a code.
const phoneFix = "write numbers in international form (+, the country code, then the number without its leading 0) " +
	"and give only mobile numbers of the allowed_countries"

// pinPhones returns the gateway's directory.PhonePin: it checks every
// number of each version of a directory that holds them all (file), says
// what it found in one log line and the directory gauges, and refuses a
// version none of whose numbers may get a code.
func (h *Handler) pinPhones(phones *directory.PhonePolicy) directory.PhonePin {
	return func(l directory.Load) error {
		s := phones.Survey(l.Entries)
		// Such a directory can text nobody: a mistake of format (national
		// numbers from a legacy database) or of allowed_countries, never a
		// working state, and loaded it would answer every /start 202 and
		// send nothing. One with some usable numbers serves those people
		// while the rest is fixed: it loads, and the line, the gauge and
		// its alert say what is wrong.
		if s.Usable == 0 && s.RefusedTotal() > 0 {
			return fmt.Errorf("none of its %d phone numbers may get a code (%s; %s): %s",
				s.RefusedTotal(), reasonCounts(s.Refused), h.firstRefused(s.FirstRefused), phoneFix)
		}
		h.phones.survey.Store(&s)
		h.logPhones(l, s)
		return nil
	}
}

// logPhones logs a version of the directory that was taken: a warning when
// some of its numbers may not get a code.
func (h *Handler) logPhones(l directory.Load, s directory.PhoneSurvey) {
	msg := "phone directory loaded"
	if l.Reload {
		msg = "phone directory reloaded"
	}
	refused, level := s.RefusedTotal(), zapcore.InfoLevel
	if refused > 0 {
		level = zapcore.WarnLevel
	}
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("site", h.SiteName), zap.String("source", l.Source),
		zap.Int("accounts", s.Accounts), zap.Int("usable", s.Usable), zap.Int("refused", refused),
	}
	if refused > 0 {
		fields = append(fields, zap.Any("refused_by_reason", s.Refused),
			zap.Strings("first_refused_hashes", h.observer.accountHashes(s.FirstRefused)))
		if h.observer.clearAccounts {
			fields = append(fields, zap.Strings("first_refused", s.FirstRefused))
		}
		fields = append(fields, zap.String("hint", "the accounts of refused numbers cannot recover a password: "+phoneFix))
	}
	ce.Write(fields...)
}

// firstRefused names the first accounts of refused numbers as the log lines
// name accounts (log_accounts).
func (h *Handler) firstRefused(accounts []string) string {
	if h.observer.clearAccounts {
		return "first accounts " + strings.Join(accounts, ", ")
	}
	return "first account hashes " + strings.Join(h.observer.accountHashes(accounts), ", ")
}

// reasonCounts writes counts by reason in the order of
// directory.PhoneReasons: "national_format 2, not_mobile 1".
func reasonCounts(byReason map[string]int) string {
	var parts []string
	for _, r := range directory.PhoneReasons() {
		if n := byReason[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, n))
		}
	}
	return strings.Join(parts, ", ")
}

// loadedPhones is what the gateway's directory holds, as the last version
// it took was found (pinPhones); nothing for a directory asked per request.
type loadedPhones struct {
	site   string
	seq    uint64 // orders the handlers of a site: the newest config wins
	survey atomic.Pointer[directory.PhoneSurvey]
}

// directoryCollector reports the numbers of the directories of the live
// handlers, one set of series per site. While a config reload overlaps the
// old and the new handler of a site, the newer one is reported.
type directoryCollector struct {
	usable, unusable *prometheus.Desc

	mu   sync.Mutex
	seq  uint64
	live map[*loadedPhones]struct{}
}

func newDirectoryCollector(ns, sub string) *directoryCollector {
	return &directoryCollector{
		usable: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "directory_usable_phones"),
			"Phone numbers of the site's directory that may get a code, as it last loaded (directory file).",
			[]string{"site"}, nil),
		unusable: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "directory_unusable_phones"),
			"Phone numbers of the site's directory that may not get a code, by reason: their accounts cannot recover a password (directory file).",
			[]string{"site", "reason"}, nil),
		live: map[*loadedPhones]struct{}{},
	}
}

// watch reports the directory of a handler of site until stop is called.
func (c *directoryCollector) watch(site string) (p *loadedPhones, stop func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	p = &loadedPhones{site: site, seq: c.seq}
	c.live[p] = struct{}{}
	return p, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.live, p)
		return nil
	}
}

// Describe sends the descriptors.
func (c *directoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.usable
	ch <- c.unusable
}

// Collect reports the newest loaded directory of each site, with a series
// for every reason, zero or not.
func (c *directoryCollector) Collect(ch chan<- prometheus.Metric) {
	type newest struct {
		seq    uint64
		survey *directory.PhoneSurvey
	}
	sites := map[string]newest{}
	c.mu.Lock()
	for p := range c.live {
		if s := p.survey.Load(); s != nil && p.seq > sites[p.site].seq {
			sites[p.site] = newest{p.seq, s}
		}
	}
	c.mu.Unlock()
	for site, n := range sites {
		ch <- prometheus.MustNewConstMetric(c.usable, prometheus.GaugeValue, float64(n.survey.Usable), site)
		for _, r := range directory.PhoneReasons() {
			ch <- prometheus.MustNewConstMetric(c.unusable, prometheus.GaugeValue, float64(n.survey.Refused[r]), site, r)
		}
	}
}

// Interface guards
var _ prometheus.Collector = (*directoryCollector)(nil)
