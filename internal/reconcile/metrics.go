package reconcile

import "github.com/prometheus/client_golang/prometheus"

// metrics are the reconciler's Prometheus series.
type metrics struct {
	passes    *prometheus.CounterVec
	checked   prometheus.Counter
	recovered prometheus.Counter
	apiErrors *prometheus.CounterVec
	stale     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_reconcile_passes_total",
			Help: "Reconcile passes, by outcome (ok, failed).",
		}, []string{"outcome"}),
		checked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_reconcile_tasks_checked_total",
			Help: "Tasks from Kling's task query API compared with the log.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_reconcile_events_recovered_total",
			Help: "Events appended because Kling reported a state klingfan never logged.",
		}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_reconcile_api_errors_total",
			Help: "Errors from Kling's task query API, by Kling code (or http_<status>, unreachable).",
		}, []string{"code"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_reconcile_stale_queries_total",
			Help: "Jobs left non-terminal past --reconcile-stale-after that a pass asked Kling about, by outcome (found, not_found, skipped).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.passes, m.checked, m.recovered, m.apiErrors, m.stale)
	}
	return m
}
