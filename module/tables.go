package module

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage/memory"
)

// tabled is a store of bounded tables (memory.Store).
type tabled interface {
	Tables() []memory.TableStats
}

// tablesCollector reports how full the tables of this process's memory
// stores are, and what they refused or let go for room, summed by table:
// what operators watch to see a flood meet the bounds (SPEC §4).
type tablesCollector struct {
	held, bound, refused, letGo *prometheus.Desc
}

func newTablesCollector(ns, sub string) tablesCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, []string{"table"}, nil)
	}
	return tablesCollector{
		held:    desc("store_entries", "Records held by the memory stores of this process, by table (flows, tokens, security, budgets, counters)."),
		bound:   desc("store_capacity", "Records the memory stores of this process hold at most, by table."),
		refused: desc("store_refused_total", "Requests a memory store turned away for want of room, by table: starts (flows, budgets), wrong codes it could not count (security)."),
		letGo:   desc("store_let_go_total", "Records a memory store dropped to make room, by table: the cheapest runs of wrong codes (security), least recently used client counters and tokens."),
	}
}

// Describe sends the descriptors.
func (c tablesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.held
	ch <- c.bound
	ch <- c.refused
	ch <- c.letGo
}

// Collect sums the tables of every pooled memory store.
func (c tablesCollector) Collect(ch chan<- prometheus.Metric) {
	type sum struct {
		held, bound    int
		refused, letGo uint64
	}
	var order []string
	sums := map[string]*sum{}
	stores.Range(func(_, v any) bool {
		t, ok := v.(*pooledStore).backend.(tabled)
		if !ok {
			return true
		}
		for _, st := range t.Tables() {
			s := sums[st.Table]
			if s == nil {
				s = &sum{}
				sums[st.Table] = s
				order = append(order, st.Table)
			}
			s.held += st.Held
			s.bound += st.Bound
			s.refused += st.Refused
			s.letGo += st.LetGo
		}
		return true
	})
	for _, table := range order {
		s := sums[table]
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(s.held), table)
		ch <- prometheus.MustNewConstMetric(c.bound, prometheus.GaugeValue, float64(s.bound), table)
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.refused), table)
		ch <- prometheus.MustNewConstMetric(c.letGo, prometheus.CounterValue, float64(s.letGo), table)
	}
}

// Interface guards
var _ prometheus.Collector = tablesCollector{}
