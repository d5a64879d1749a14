package module

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedMetrics are the names of the metrics the handler registers.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := processMetrics()
	names := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range m.collectors() {
		ch := make(chan *prometheus.Desc, 1)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			sub := fqName.FindStringSubmatch(d.String())
			if sub == nil {
				t.Fatalf("no fqName in %s", d)
			}
			names[sub[1]] = true
		}
	}
	return names
}

var queriedMetric = regexp.MustCompile(`caddy_sms_recovery_[a-z_]+`)

// TestDeployQueriesExportedMetrics keeps the operators' kit true to the
// module: the alert rules and the Grafana dashboard query only metrics the
// handler exports, and the dashboard shows every one of them.
func TestDeployQueriesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)

	rules, err := os.ReadFile("../deploy/prometheus/sms-recovery.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range queriedMetric.FindAllString(string(rules), -1) {
		if !exported[name] {
			t.Errorf("sms-recovery.rules.yml queries %s, which the module does not export", name)
		}
	}

	raw, err := os.ReadFile("../deploy/grafana/sms-recovery-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	shown := map[string]bool{}
	exprs := []string{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	for _, e := range exprs {
		for _, name := range queriedMetric.FindAllString(e, -1) {
			shown[name] = true
			if !exported[name] {
				t.Errorf("the dashboard queries %s, which the module does not export: %s", name, e)
			}
		}
	}
	for name := range exported {
		if !shown[name] {
			t.Errorf("the dashboard shows no panel of %s", name)
		}
	}
	if len(exported) < 6 || !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "$site") }) {
		t.Errorf("exported %v; a panel should filter on $site", exported)
	}
}
