package jobs

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Label bounds: a model name is a label value only while it looks like one
// and while fewer than maxModels distinct names have been seen, so a sender
// cannot grow the metrics without bound.
const (
	maxModels      = 64
	maxModelLength = 64
	// otherModel replaces a model name that is not a bounded label value.
	otherModel = "other"
	// unknownLabel stands for a value the job does not carry.
	unknownLabel = "unknown"
)

// Metrics counts finished jobs, what they cost and how long they took. A
// job is counted by the one write that makes its state terminal, so a
// duplicate delivery or a second replica folding the same event counts
// nothing. Totals over a cluster are the sum over replicas.
type Metrics struct {
	units    *prometheus.CounterVec
	cash     *prometheus.CounterVec
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	folded   prometheus.Gauge

	mu     sync.Mutex
	models map[string]struct{} // guarded by mu
}

// NewMetrics registers the job metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"webhook", "kind", "model"}
	m := &Metrics{
		units: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_job_units_total",
			Help: "Units Kling charged for finished jobs (final_unit_deduction or unit billing), counted once per job.",
		}, labels),
		cash: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_job_cash_total",
			Help: "Cash Kling charged for finished jobs (cash billing), by currency, counted once per job.",
		}, append(labels, "currency")),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_jobs_finished_total",
			Help: "Jobs that reached a terminal status, by status, counted once per job.",
		}, append(labels, "status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "klingfan_job_duration_seconds",
			Help:    "Time from a job's creation (or first sight) to its completion.",
			Buckets: []float64{5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200},
		}, labels),
		folded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "klingfan_jobs_folded_sequence",
			Help: "The log sequence through which this replica has folded events into the job states.",
		}),
		models: make(map[string]struct{}),
	}
	reg.MustRegister(m.units, m.cash, m.finished, m.duration, m.folded)
	return m
}

// projected records the fold's position.
func (m *Metrics) projected(seq uint64) {
	if m != nil {
		m.folded.Set(float64(seq))
	}
}

// observe counts next when it is the first terminal state of a real (not
// test) job.
func (m *Metrics) observe(prev, next *gatewayv1.JobState, ev *gatewayv1.Event) {
	if m == nil || ev.GetTest() || !Terminal(next.GetJob().GetStatus()) || Terminal(prev.GetJob().GetStatus()) {
		return
	}
	job := next.GetJob()
	webhook, kind, model := next.GetWebhookId(), kindLabel(job), m.modelLabel(job.GetModel())
	m.finished.WithLabelValues(webhook, kind, model, statusLabel(job.GetStatus())).Inc()
	if units, ok := Units(job); ok {
		m.units.WithLabelValues(webhook, kind, model).Add(units)
	}
	if d, ok := Duration(next); ok {
		m.duration.WithLabelValues(webhook, kind, model).Observe(d.Seconds())
	}
}

// Units is what the job was charged in units, when the sender said.
func Units(job *gatewayv1.Job) (float64, bool) {
	s := strings.TrimSpace(job.GetUnitsDeducted())
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// statusLabel is the lower-case status name: "succeeded", "failed", ...
func statusLabel(s gatewayv1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

// kindLabel names what the job makes. Until the contract carries a job
// kind, every job is "unknown".
func kindLabel(*gatewayv1.Job) string { return unknownLabel }

// modelLabel bounds a model name as a label value.
func (m *Metrics) modelLabel(model string) string {
	if model == "" {
		return unknownLabel
	}
	if len(model) > maxModelLength {
		return otherModel
	}
	for i := 0; i < len(model); i++ {
		c := model[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return otherModel
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.models[model]; ok {
		return model
	}
	if len(m.models) >= maxModels {
		return otherModel
	}
	m.models[model] = struct{}{}
	return model
}
