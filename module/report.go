package module

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms/report"
)

// reportRoute is where providers send delivery reports, below the path
// prefix: <reportRoute><provider>, e.g. /sms-report/kannel.
const reportRoute = "/sms-report/"

// provisionReports makes the report URLs of the gateway, signed with keys,
// and decodes Bird's secrets (checked by Validate).
func (h *Handler) provisionReports(keys *recovery.Keyring) {
	h.reports = report.NewURLs(strings.TrimSuffix(h.PublicURL, "/")+h.prefix+strings.TrimSuffix(reportRoute, "/"), keys)
	if dr := h.DeliveryReports; dr != nil {
		for _, s := range dr.BirdSecrets {
			if k, err := report.BirdSecret(s); err == nil {
				h.birdKeys = append(h.birdKeys, k)
			}
		}
	}
}

// serveReport takes a provider's delivery report: counted when its
// signature holds, refused with 403 and counted as forged when it does
// not. A report changes nothing but the counts.
func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request, provider string) error {
	var (
		rep report.Report
		err error
	)
	switch provider {
	case report.Kannel: // smsbox fetches the dlr-url; the query is the report
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			return h.refuse(w, r, errMethod)
		}
		rep, err = h.reports.Kannel(r.URL.Query())
	case report.Bird:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			return h.refuse(w, r, errMethod)
		}
		body, rf := readBody(w, r)
		if rf != nil {
			return h.refuse(w, r, rf)
		}
		rep, err = report.ReadBird(h.birdKeys, r.Header, body, h.now())
	default:
		return h.refuse(w, r, errNotFound)
	}
	switch {
	case errors.Is(err, report.ErrForged):
		h.observer.reportRefused(provider, "forged", clientIP(r), err)
		return h.refuse(w, r, errForgedReport)
	case err != nil:
		h.observer.reportRefused(provider, "malformed", clientIP(r), err)
		return h.refuse(w, r, errBadReport)
	}
	h.observer.deliveryReport(rep)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
